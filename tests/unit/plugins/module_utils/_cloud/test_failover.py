# -*- coding: utf-8 -*-
"""The capacity failover, written once in the base provider: placements in order, one capacity report, min_count."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    UNRANKED, Node, NodeSpec, Prepared, Provider)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CapacityError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import Cloud, Option


class Fake(Provider):
    name = "fake"
    cloud = Cloud("fake", (Option("min_count", ("m",), type="int", scope="instance"),))
    placement_kinds = "zones"

    def __init__(self, full=(), options=None):
        super(Fake, self).__init__(options)
        self.full = set(full)
        self.launched, self.cleaned = [], []

    def preflight_create(self, spec, ranks, existing=(), check_mode=False):
        return Prepared(tries=[{"zone": "a"}, {"zone": "b"}, {"zone": "c"}], skipped=[{"zone": "d", "error": "no type"}])

    def _launch_in(self, spec, ranks, trial, prepared, minimum, state):
        self.launched.append((trial["zone"], minimum))
        if trial["zone"] in self.full:
            raise CapacityError("%s is full" % trial["zone"])
        return [Node(rank=r, name="c-%d" % r, id=str(r)) for r in ranks], dict(trial, count=len(ranks))

    def _after_capacity_error(self, spec, ranks, trial, state):
        self.cleaned.append(trial["zone"])

    def list_nodes(self, cluster):
        return []

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        pass

    def wait_ready(self, cluster, nodes, timeout):
        return nodes


def test_placements_are_tried_in_order_and_the_failed_ones_reported():
    fake = Fake(full=("a", "b"))
    launch = fake.create_nodes(NodeSpec("c", instance_type="big"), [0, 1])
    assert [z for z, _m in fake.launched] == ["a", "b", "c"] and fake.cleaned == ["a", "b"]
    assert launch.info["landed"] == {"zone": "c", "count": 2}
    assert [(f["zone"], f["error"]) for f in launch.info["failover"]] == [("a", "a is full"), ("b", "b is full")]


def test_no_capacity_anywhere_is_one_error_naming_every_placement():
    fake = Fake(full=("a", "b", "c"), options={"min_count": 1})
    with pytest.raises(CapacityError) as caught:
        fake.create_nodes(NodeSpec("c", instance_type="big"), [0, 1, 2])
    assert str(caught.value) == ("no placement had capacity for 3 x big. Tried, in order: a: a is full; b: b is full; "
                                 "c: c is full; d: no type. Add placements (other zones), set min_count to accept "
                                 "fewer nodes, or retry later")


def test_min_count_counts_the_clusters_other_ranked_nodes():
    fake = Fake(options={"min_count": 3})
    existing = [Node(rank=0, name="c-0", id="0"), Node(rank=UNRANKED, name="x", id="x")]
    fake.create_nodes(NodeSpec("c"), [1, 2, 3], existing=existing)
    assert fake.launched == [("a", 2)]  # 3 wanted, rank 0 kept: 2 of the 3 new ones at least
    assert Fake().minimum_count([1, 2, 3]) == 3  # no min_count: all or nothing


def test_node_knows_its_host_variables():
    node = Node(rank=2, name="c-2", id="i-2", state="running", private_address="10.0.0.2", ssh_host="1.2.3.4",
                ssh_port=2222, ssh_user="gpuadmin", instance_type="big", zone="a", launch_time="t")
    assert node.hostvars() == {
        "ansible_host": "1.2.3.4", "ansible_port": 2222, "ansible_user": "gpuadmin", "gpu_cluster_rank": 2,
        "gpu_cluster_private_address": "10.0.0.2", "gpu_cluster_node_id": "i-2", "gpu_cluster_zone": "a",
        "gpu_cluster_instance_type": "big", "gpu_cluster_state": "running", "gpu_cluster_launch_time": "t",
        "gpu_cluster_deadline": ""}
    assert node.to_dict()["hostvars"] == node.hostvars()


def test_a_node_with_a_ttl_has_its_deadline_from_its_launch_time():
    node = Node(rank=0, name="c-0", id="i-0", launch_time="2026-12-01T00:40:01.000Z", ttl_minutes=90)
    assert node.deadline == "2026-12-01T02:10:01Z"
    assert node.to_dict()["deadline"] == node.hostvars()["gpu_cluster_deadline"] == "2026-12-01T02:10:01Z"
    assert Node(rank=0, name="c-0", id="i-0", launch_time="2026-12-01 00:40:01.5 +0000 UTC",
                ttl_minutes=1).deadline == "2026-12-01T00:41:01Z"  # podman's Created
    assert Node(rank=0, name="c-0", id="i-0", launch_time="", ttl_minutes=5).deadline == ""
