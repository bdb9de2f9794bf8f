"""Every provider says when a node was launched (what it has cost is counted from then) and, where the cloud
knows, whether it is a spot node."""

from __future__ import annotations

import datetime

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import local
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws import shapes as aws
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.prices import parse_time


def test_aws_launch_time_and_market():
    inst = {"InstanceId": "i-1", "State": {"Name": "running"}, "InstanceType": "p4d.24xlarge",
            "LaunchTime": datetime.datetime(2026, 12, 1, 0, 40, 1, tzinfo=datetime.timezone.utc),
            "Tags": [{"Key": "aiinfra-gpu-rank", "Value": "0"}]}
    node = aws.node_from_instance(inst, "c1")
    assert node.launch_time == "2026-12-01T00:40:01+00:00" and node.market == "on_demand"
    assert parse_time(node.launch_time) == datetime.datetime(2026, 12, 1, 0, 40, 1,
                                                             tzinfo=datetime.timezone.utc).timestamp()
    inst["InstanceLifecycle"] = "spot"
    assert aws.node_from_instance(inst, "c1").market == "spot"


def test_local_launch_time_is_the_containers_creation():
    info = {"Id": "0123456789abcdef", "Name": "c1-0", "Created": "2026-12-01T00:40:01.123456789Z",
            "Config": {"Labels": {"aiinfra-gpu-cluster": "c1", "aiinfra-gpu-rank": "0"}},
            "State": {"Running": True, "Status": "running"},
            "NetworkSettings": {"Networks": {"aiinfra-c1": {"IPAddress": "10.89.0.3"}}}}
    node = local.LocalProvider({"ssh_access": "address"})._node(info, "c1")
    # no market label (a node made before local nodes had one): on-demand
    assert node.launch_time == "2026-12-01T00:40:01.123456789Z" and node.market == "on_demand"
    assert int(parse_time(node.launch_time)) == 1796085601
    info["Config"]["Labels"]["aiinfra-market"] = "spot"
    assert local.LocalProvider({"ssh_access": "address"})._node(info, "c1").market == "spot"


def test_gcp_launch_time_is_the_last_start_and_spot_is_the_provisioning_model():
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import shapes as gcp
    inst = {"name": "c1-0", "id": "1", "status": "RUNNING", "labels": {"aiinfra-gpu-cluster": "c1"},
            "creationTimestamp": "2026-11-30T10:00:00.000-08:00", "lastStartTimestamp": "2026-12-01T00:40:01.000-00:00",
            "scheduling": {"provisioningModel": "SPOT"}}
    node = gcp.node_from_instance(inst, "c1")
    assert int(parse_time(node.launch_time)) == 1796085601 and node.market == "spot"
    del inst["lastStartTimestamp"], inst["scheduling"]
    node = gcp.node_from_instance(inst, "c1")
    assert parse_time(node.launch_time) == parse_time("2026-11-30T18:00:00Z") and node.market == "on_demand"
