"""The torchrun filters: node layout from hostvars, what to do with a run id that ran before."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.filter.torchrun import FilterModule


FILTERS = FilterModule().filters()


def test_layout_from_hostvars():
    hostvars = [
        {"inventory_hostname": "c-1", "gpu_cluster_rank": 1, "gpu_cluster_private_address": "10.89.0.3"},
        {"inventory_hostname": "c-0", "gpu_cluster_rank": 0, "gpu_cluster_private_address": "10.89.0.2"},
        {"inventory_hostname": "byo", "ansible_host": "192.0.2.7", "gpu_cluster_rank": 2},
    ]
    nodes = FILTERS["torchrun_layout"](hostvars)
    assert [(n["host"], n["node_rank"], n["address"]) for n in nodes] == [
        ("c-0", 0, "10.89.0.2"), ("c-1", 1, "10.89.0.3"), ("byo", 2, "192.0.2.7")]


def test_layout_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError, match="both have gpu_cluster_rank 0"):
        FILTERS["torchrun_layout"]([{"inventory_hostname": "a", "gpu_cluster_rank": 0, "ansible_host": "x"},
                                    {"inventory_hostname": "b", "gpu_cluster_rank": 0, "ansible_host": "y"}])


def test_rerun_plan_ignores_skipped_results():
    assert FILTERS["torchrun_rerun_plan"]([{"skipped": True}]) == "start"
    assert FILTERS["torchrun_rerun_plan"]([{"started": True, "active": True}]) == "attach"
