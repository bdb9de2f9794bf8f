"""Owner refusal, kept resources and the rollback's failure paths of reconcile, on an in-memory cloud."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, errors, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import default_owner, owner_of

from test_reconcile import MemoryCloud


class OwnedCloud(MemoryCloud):
    """Nodes record the spec's owner; ``fail_wait`` raises any exception from wait_ready; ``fail_delete`` makes the
    rollback's deletion fail."""

    def __init__(self, fail_wait=None, fail_delete=None, **kw):
        super(OwnedCloud, self).__init__(**kw)
        self.fail_wait = fail_wait
        self.fail_delete = fail_delete
        self.kept = []

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        made = super(OwnedCloud, self).create_nodes(spec, ranks, existing, prepared, timeout)
        for node in made:
            node.owner = spec.owner
        return made

    def wait_ready(self, cluster, nodes, timeout):
        if self.fail_wait is not None:
            raise self.fail_wait
        return super(OwnedCloud, self).wait_ready(cluster, nodes, timeout)

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        if self.fail_delete is not None:
            raise self.fail_delete
        super(OwnedCloud, self).delete_nodes(cluster, nodes, wait, timeout)

    def kept_resources(self, cluster):
        return list(self.kept)


def spec(owner="alice@lab"):
    return base.NodeSpec(cluster="c1", ssh_public_key="k", owner=owner)


def test_nodes_carry_the_owner_and_another_owner_cannot_shrink_replace_or_delete_without_force():
    cloud = OwnedCloud()
    reconcile.ensure_present(cloud, spec(), 3)
    assert set(n.owner for n in cloud.list_nodes("c1")) == {"alice@lab"}
    assert spec().tags()[base.OWNER_TAG] == "alice@lab"
    for call in (lambda: reconcile.ensure_present(cloud, spec("bob@lab"), 1),
                 lambda: reconcile.ensure_present(cloud, spec("bob@lab"), 3, replace=[2]),
                 lambda: reconcile.ensure_present(cloud, spec("bob@lab"), 1, check_mode=True),
                 lambda: reconcile.ensure_absent(cloud, "c1", owner="bob@lab")):
        with pytest.raises(errors.ConfigError, match="cluster c1 was made by alice@lab, not bob@lab: refusing to"):
            call()
    assert len(cloud.list_nodes("c1")) == 3 and not [c for c in cloud.calls if c[0] == "delete"]
    # growing it, or an unchanged run, deletes nothing: allowed
    reconcile.ensure_present(cloud, spec("bob@lab"), 4)
    # rank 3 is bob's now: alice's shrink is refused for it, alone
    with pytest.raises(errors.ConfigError, match="made by bob@lab, not alice@lab: refusing to delete .shrink. its "
                                                 "node.s. of rank 3\\."):
        reconcile.ensure_present(cloud, spec(), 2)
    reconcile.ensure_present(cloud, spec("bob@lab"), 3)                    # bob's own shrink needs no force
    reconcile.ensure_present(cloud, spec(), 2)                             # nor alice's
    res = reconcile.ensure_absent(cloud, "c1", owner="bob@lab", force=True)
    assert res["changed"] and cloud.list_nodes("c1") == []


def test_nodes_without_an_owner_tag_belong_to_nobody():
    cloud = OwnedCloud()
    reconcile.ensure_present(cloud, spec(owner=""), 2)
    reconcile.ensure_present(cloud, spec("bob@lab"), 1)
    assert len(cloud.list_nodes("c1")) == 1


def test_absent_reports_what_it_kept():
    cloud = OwnedCloud()
    reconcile.ensure_present(cloud, spec(), 1)
    cloud.kept = ["instance/i-9 (carries aiinfra-gpu-cluster=c1 but not aiinfra-managed-by)"]
    assert reconcile.ensure_absent(cloud, "c1", owner="alice@lab", check_mode=True)["kept"] == cloud.kept
    assert reconcile.ensure_absent(cloud, "c1", owner="alice@lab")["kept"] == cloud.kept


@pytest.mark.parametrize("exc", [KeyError("properties"), errors.WaitTimeout("timed out after 5s")],
                         ids=["not-a-cloud-error", "cloud-error"])
def test_rollback_runs_on_any_exception(exc):
    cloud = OwnedCloud(fail_wait=exc)
    with pytest.raises(type(exc)) as raised:
        reconcile.ensure_present(cloud, spec(), 2)
    assert raised.value is exc
    assert cloud.list_nodes("c1") == [] and cloud.resources == set()      # what the call made is gone
    assert reconcile.rollback_warnings(raised.value) == []


def test_a_failed_rollback_is_a_warning_naming_what_is_left():
    cloud = OwnedCloud(fail_wait=errors.WaitTimeout("timed out after 5s"),
                       fail_delete=errors.TransientError("EC2 is unavailable"))
    with pytest.raises(errors.WaitTimeout) as raised:
        reconcile.ensure_present(cloud, spec(), 2)
    (warning,) = reconcile.rollback_warnings(raised.value)
    assert "rollback of cluster c1 failed (delete the nodes this call created: EC2 is unavailable)" in warning
    assert "node c1-0 (i-1), node c1-1 (i-2), network/c1" in warning and "billed" in warning
    assert len(cloud.list_nodes("c1")) == 2                               # they really are left


def test_owner_defaults_to_user_at_host_and_bad_owners_are_refused():
    assert "@" in default_owner() and owner_of({"owner": None}) == default_owner()
    assert owner_of({"owner": "awx:alice"}) == "awx:alice"
    for bad in (" alice", "a" * 129, "al\nice"):
        with pytest.raises(errors.ConfigError, match="is not accepted"):
            owner_of({"owner": bad})


def test_the_module_reports_a_failed_rollback_as_warnings(monkeypatch):
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import module as cloud_module

    class Module(object):
        def __init__(self):
            self.warnings, self.failed = [], None

        def warn(self, text):
            self.warnings.append(text)

        def fail_json(self, **kwargs):
            self.failed = kwargs
    mod = Module()
    exc = errors.WaitTimeout("timed out after 5s")
    exc.rollback_warnings = ["rollback of cluster c1 failed (...): node c1-0 (i-1)"]
    cloud_module.fail(mod, exc)
    assert mod.warnings == exc.rollback_warnings and mod.failed["rollback_left"] is True
    assert mod.failed["msg"].startswith("timed out after 5s")
