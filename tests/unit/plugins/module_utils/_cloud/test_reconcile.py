"""Reconcile through the provider interface, with an in-memory cloud that keeps real state."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, errors, reconcile


class MemoryCloud(base.Provider):
    """A provider whose 'cloud' is a dict: enough state to check what reconcile does to it."""

    name = "memory"

    def __init__(self, fail_create_after=None, ready=True):
        super(MemoryCloud, self).__init__({})
        self.nodes = {}
        self.resources = set()
        self.ids = itertools.count(1)
        self.fail_create_after = fail_create_after
        self.ready = ready
        self.calls = []

    def list_nodes(self, cluster):
        self.calls.append("list")
        return [n for n in self.nodes.values() if n.labels.get("cluster") == cluster]

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        self.calls.append(("create", tuple(ranks)))
        self.resources.add("network/%s" % spec.cluster)
        made = []
        for i, rank in enumerate(ranks):
            if self.fail_create_after is not None and i >= self.fail_create_after:
                raise errors.CapacityError("out of capacity")
            node = base.Node(rank=rank, name=base.node_name(spec.cluster, rank), id="i-%d" % next(self.ids),
                             state="pending", labels={"cluster": spec.cluster})
            self.nodes[node.id] = node
            made.append(node)
        return made

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        self.calls.append(("delete", tuple(sorted(n.rank for n in nodes))))
        for n in nodes:
            self.nodes.pop(n.id, None)

    def start_nodes(self, cluster, nodes):
        self.calls.append(("start", tuple(n.rank for n in nodes)))
        for n in nodes:
            self.nodes[n.id].state = "running"

    def wait_ready(self, cluster, nodes, timeout):
        if not self.ready:
            raise errors.WaitTimeout("timed out after %ss waiting for nodes" % timeout)
        for n in nodes:
            self.nodes[n.id].state = "running"
        return [self.nodes[n.id] for n in nodes]

    def cluster_resources(self, cluster):
        return sorted(r for r in self.resources if r.endswith("/" + cluster))

    def delete_cluster_resources(self, cluster, timeout=600):
        gone = self.cluster_resources(cluster)
        self.resources -= set(gone)
        return gone


def spec(cluster="c1"):
    return base.NodeSpec(cluster=cluster, ssh_public_key="k")


def ranks_ids(cloud):
    return sorted((n.rank, n.id) for n in cloud.list_nodes("c1"))


def test_create_rerun_scale_keeps_ranks_and_ids():
    cloud = MemoryCloud()
    res = reconcile.ensure_present(cloud, spec(), 3)
    assert res["changed"] and [n["rank"] for n in res["nodes"]] == [0, 1, 2]
    first = ranks_ids(cloud)

    res = reconcile.ensure_present(cloud, spec(), 3)
    assert not res["changed"] and ranks_ids(cloud) == first

    res = reconcile.ensure_present(cloud, spec(), 4)
    assert res["changed"] and res["plan"]["create"] == [3]
    assert ranks_ids(cloud)[:3] == first

    res = reconcile.ensure_present(cloud, spec(), 2)
    assert res["plan"]["delete"] == [3, 2]
    assert ranks_ids(cloud) == first[:2]


def test_check_mode_touches_nothing_and_diffs():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 2)
    before = ranks_ids(cloud)
    cloud.calls = []
    res = reconcile.ensure_present(cloud, spec(), 4, check_mode=True)
    assert res["changed"] and res["plan"]["create"] == [2, 3]
    assert res["diff"]["before"]["count"] == 2 and res["diff"]["after"]["count"] == 4
    assert "c1-3 (rank 3, to create)" in res["diff"]["after"]["nodes"]
    assert all(c == "list" for c in cloud.calls) and ranks_ids(cloud) == before

    res = reconcile.ensure_absent(cloud, "c1", check_mode=True)
    assert res["changed"] and res["plan"]["delete"] == [0, 1] and ranks_ids(cloud) == before


def test_failed_create_rolls_back_what_it_made_and_the_new_cluster_resources():
    cloud = MemoryCloud(fail_create_after=1)
    with pytest.raises(errors.CapacityError):
        reconcile.ensure_present(cloud, spec(), 3)
    assert cloud.list_nodes("c1") == [] and cloud.cluster_resources("c1") == []


def test_wait_timeout_fails_and_keeps_the_existing_nodes():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 2)
    before = ranks_ids(cloud)
    cloud.ready = False
    with pytest.raises(errors.WaitTimeout):
        reconcile.ensure_present(cloud, spec(), 3, wait_timeout=1)
    assert ranks_ids(cloud) == before            # only the node this call made is gone
    assert cloud.cluster_resources("c1") == ["network/c1"]


def test_stopped_nodes_are_started():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 2)
    for n in cloud.nodes.values():
        n.state = "stopped"
    res = reconcile.ensure_present(cloud, spec(), 2)
    assert res["changed"] and res["plan"]["start"] == [0, 1]
    assert all(n.state == "running" for n in cloud.nodes.values())


def test_absent_removes_nodes_and_resources_then_is_idempotent():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 2)
    res = reconcile.ensure_absent(cloud, "c1")
    assert res["changed"] and res["deleted_resources"] == ["network/c1"]
    assert cloud.list_nodes("c1") == [] and cloud.cluster_resources("c1") == []
    assert not reconcile.ensure_absent(cloud, "c1")["changed"]


def test_other_clusters_are_untouched():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec("c1"), 2)
    reconcile.ensure_present(cloud, spec("c2"), 1)
    reconcile.ensure_absent(cloud, "c1")
    assert [n.name for n in cloud.list_nodes("c2")] == ["c2-0"]


def test_replace_recreates_only_the_named_ranks():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 3)
    before = dict(ranks_ids(cloud))
    cloud.nodes[before[2]].state = "stopped"     # lost nodes may be stopped, or answer nothing at all
    cloud.calls = []
    res = reconcile.ensure_present(cloud, spec(), 3, replace=[2])
    assert res["changed"] and res["plan"] == {"keep": [0, 1], "create": [2], "delete": [], "replace": [2], "start": []}
    after = dict(ranks_ids(cloud))
    assert after[0] == before[0] and after[1] == before[1] and after[2] != before[2]
    # deleted before its successor is made (same name), and the successor is made beside the kept nodes only
    assert cloud.calls[1:3] == [("delete", (2,)), ("create", (2,))]
    assert [n["rank"] for n in res["nodes"]] == [0, 1, 2] and all(n["state"] == "running" for n in res["nodes"])

    # the next call without replace changes nothing
    assert not reconcile.ensure_present(cloud, spec(), 3)["changed"]


def test_replace_in_check_mode_only_plans():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 2)
    before = ranks_ids(cloud)
    cloud.calls = []
    res = reconcile.ensure_present(cloud, spec(), 2, replace=[0], check_mode=True)
    assert res["changed"] and res["plan"]["replace"] == [0] and res["plan"]["keep"] == [1]
    assert "c1-0 (rank 0, to replace)" in res["diff"]["after"]["nodes"]
    assert all(c == "list" for c in cloud.calls) and ranks_ids(cloud) == before


def test_failed_replacement_removes_what_it_made_and_keeps_the_others():
    cloud = MemoryCloud()
    reconcile.ensure_present(cloud, spec(), 3)
    before = dict(ranks_ids(cloud))
    cloud.fail_create_after = 0
    with pytest.raises(errors.CapacityError):
        reconcile.ensure_present(cloud, spec(), 3, replace=[1])
    after = dict(ranks_ids(cloud))
    assert after == {0: before[0], 2: before[2]}     # the lost node is gone; nothing half-made is left
    assert cloud.cluster_resources("c1") == ["network/c1"]


class MarketCloud(MemoryCloud):
    """A memory cloud whose nodes carry the market of the launch that made them (the provider's spot option)."""

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        self.calls.append(("market", tuple(ranks), "spot" if self.opts.get("spot") else "on_demand",
                           tuple(sorted(n.rank for n in existing))))
        made = super(MarketCloud, self).create_nodes(spec, ranks, existing, prepared, timeout)
        for node in made:
            node.market = "spot" if self.opts.get("spot") else "on_demand"
        return made


def markets(cloud):
    return dict((n.rank, n.market) for n in cloud.list_nodes("c1"))


def test_on_demand_ranks_are_launched_apart_on_demand_and_the_rest_stays_spot():
    cloud = MarketCloud()
    cloud.opts["spot"] = True
    reconcile.ensure_present(cloud, spec(), 4)
    assert markets(cloud) == {0: "spot", 1: "spot", 2: "spot", 3: "spot"}
    # rank 1 falls back (its node gone: a hole), rank 3 is replaced as spot: one launch each, the on-demand one
    # beside every other node (the spot launch's new node included)
    gone = [n for n in cloud.list_nodes("c1") if n.rank == 1][0]
    cloud.nodes.pop(gone.id)
    cloud.calls.clear()
    res = reconcile.ensure_present(cloud, spec(), 4, replace=[1, 3], on_demand=[1])
    launches = [c for c in cloud.calls if c[0] == "market"]
    assert launches == [("market", (3,), "spot", (0, 2)), ("market", (1,), "on_demand", (0, 2, 3))]
    assert markets(cloud) == {0: "spot", 1: "on_demand", 2: "spot", 3: "spot"}
    assert [n["market"] for n in res["nodes"]] == ["spot", "on_demand", "spot", "spot"]
    assert cloud.opts["spot"] is True  # the provider's option is back for the next call
    # without spot, on_demand changes nothing: one launch
    plain = MarketCloud()
    reconcile.ensure_present(plain, spec(), 2, on_demand=[1])
    assert [c for c in plain.calls if c[0] == "market"] == [("market", (0, 1), "on_demand", ())]


def test_a_failed_on_demand_launch_rolls_back_the_spot_launch_too():
    class FailOnDemand(MarketCloud):
        def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
            if not self.opts.get("spot"):
                raise errors.CapacityError("no on-demand capacity")
            return super(FailOnDemand, self).create_nodes(spec, ranks, existing, prepared, timeout)

    cloud = FailOnDemand()
    cloud.opts["spot"] = True
    reconcile.ensure_present(cloud, spec(), 2)
    before = ranks_ids(cloud)
    with pytest.raises(errors.CapacityError):
        reconcile.ensure_present(cloud, spec(), 4, on_demand=[3])
    assert ranks_ids(cloud) == before and cloud.opts["spot"] is True
