"""The provider interface's pure parts: planning, validation, tags."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0v8Xw9V3c1Yx3b9bqzY4f1m1dJmXb8nCw7n1kq0aZ1 user@host"
RSA_HDR_AS_ED = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host"


def nodes(*ranks):
    return [base.Node(rank=r, name="c-%d" % r, id="id%d" % r) for r in ranks]


@pytest.mark.parametrize("existing,count,keep,create,delete", [
    ((), 0, [], [], []),
    ((), 3, [], [0, 1, 2], []),
    ((0, 1, 2), 3, [0, 1, 2], [], []),
    ((0, 1, 2), 4, [0, 1, 2], [3], []),
    ((0, 1, 2, 3), 2, [0, 1], [], [3, 2]),
    ((0, 2), 3, [0, 2], [1], []),          # a lost node's rank is refilled, others never move
    ((0, 1, 2), 0, [], [], [2, 1, 0]),
    ((5,), 2, [], [0, 1], [5]),
])
def test_plan_nodes(existing, count, keep, create, delete):
    plan = base.plan_nodes(nodes(*existing), count)
    assert [n.rank for n in plan.keep] == keep
    assert plan.create == create
    assert [n.rank for n in plan.delete] == delete
    assert plan.changed == bool(create or delete)


def test_plan_nodes_duplicate_rank_keeps_one():
    dup = nodes(0, 1) + [base.Node(rank=1, name="c-1b", id="zz")]
    plan = base.plan_nodes(dup, 2)
    assert [n.id for n in plan.keep] == ["id0", "id1"]
    assert [n.id for n in plan.delete] == ["zz"]


@pytest.mark.parametrize("existing,count,replace,keep,create,replaced", [
    ((0, 1, 2), 3, [1], [0, 2], [1], [1]),          # only the named rank is deleted and made again
    ((0, 1, 2), 3, [2, 0, 2], [1], [0, 2], [0, 2]),  # order and repeats do not matter
    ((0, 2), 3, [1], [0, 2], [1], []),               # a rank whose node is already gone is just created
    ((0, 1), 3, [0], [1], [0, 2], [0]),              # together with a scale-up
    ((0, 1), 2, [], [0, 1], [], []),
])
def test_plan_nodes_replace(existing, count, replace, keep, create, replaced):
    plan = base.plan_nodes(nodes(*existing), count, replace)
    assert [n.rank for n in plan.keep] == keep
    assert plan.create == create
    assert [n.rank for n in plan.replace] == replaced
    assert plan.delete == []
    assert plan.to_dict()["replace"] == replaced
    assert plan.changed == bool(create or replaced)


@pytest.mark.parametrize("replace", [[2], [-1], [0, 5]])
def test_plan_nodes_replace_outside_the_cluster(replace):
    with pytest.raises(ConfigError, match=r"replace names rank\(s\) .* but the cluster's ranks are 0..1 \(count 2\)"):
        base.plan_nodes(nodes(0, 1), 2, replace)


def test_plan_nodes_negative_count():
    with pytest.raises(ConfigError, match="count must be >= 0"):
        base.plan_nodes([], -1)


@pytest.mark.parametrize("cid", ["a", "demo", "llm-train-01", "a" * 40, "x9"])
def test_cluster_id_ok(cid):
    assert base.validate_cluster_id(cid) == cid


@pytest.mark.parametrize("cid", ["", "Demo", "9lives", "-a", "a-", "a_b", "a.b", "a" * 41, "a b", None, 5])
def test_cluster_id_rejected(cid):
    with pytest.raises(ConfigError, match="not accepted by every cloud") as err:
        base.validate_cluster_id(cid)
    assert "lowercase letters" in str(err.value)


def test_ssh_key_ok_and_stripped():
    assert base.validate_ssh_public_key("  " + ED25519 + "\n") == ED25519


@pytest.mark.parametrize("key,msg", [
    ("", "not an OpenSSH public key"),
    ("hello world", "not an OpenSSH public key"),
    ("ssh-ed25519", "not an OpenSSH public key"),
    ("ssh-ed25519 !!!notbase64!!!", "not valid base64"),
    (RSA_HDR_AS_ED, "says ssh-ed25519 but its key data is ssh-rsa"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blb\n-----END OPENSSH PRIVATE KEY-----", "holds a private key"),
    (ED25519 + "\n" + ED25519, "not an OpenSSH public key"),
])
def test_ssh_key_rejected(key, msg):
    with pytest.raises(ConfigError, match=msg) as err:
        base.validate_ssh_public_key(key)
    assert ".pub" in str(err.value)


@pytest.mark.parametrize("user,ok", [("gpuadmin", True), ("ubuntu", True), ("root", False), ("Bad", False),
                                     ("", False), ("a" * 33, False), ("x;rm", False)])
def test_ssh_user(user, ok):
    if ok:
        assert base.validate_ssh_user(user) == user
    else:
        with pytest.raises(ConfigError):
            base.validate_ssh_user(user)


def test_tags_ours_win_over_user_labels():
    spec = base.NodeSpec(cluster="c1", labels={"team": "nlp", base.CLUSTER_TAG: "spoofed"})
    tags = spec.tags(rank=3)
    assert tags == {"team": "nlp", base.CLUSTER_TAG: "c1", base.MANAGED_TAG: base.MANAGED_VALUE, base.RANK_TAG: "3"}
