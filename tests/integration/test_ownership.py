"""One person's cluster is theirs, on every cloud account: a cluster needs a name given on purpose, every node
carries aiinfra-owner, nodes another owner made are not deleted, shrunk or replaced without gpu_cluster_force, and
teardown deletes only what carries both the cluster tag and aiinfra-managed-by (on Azure a resource group holding
anything else is kept, and named).

aws: the real playbooks against moto behind ec2_proxy; gcp: the provider against the Compute double; azure: the
real playbooks against the ARM double. The helpers of each cloud's own test file are reused.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from cloud_servers import arm, moto, proxy  # noqa: F401  pylint: disable=unused-import
from cloud_servers import gce as double  # noqa: F401  pylint: disable=unused-import
from conftest import run_playbook, unique_name

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError


def _helpers(name):
    """The helpers of a cloud's own test file, loaded under a name of their own (the unit tests have files of the
    same basenames: importing ``test_aws`` would clash with them in one pytest session)."""
    spec = importlib.util.spec_from_file_location("_ownership_%s" % name,
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


aws = _helpers("test_aws")
az = _helpers("test_azure")
gcp = _helpers("test_gcp")

CLUSTER_TAG = "aiinfra-gpu-cluster"
MANAGED_TAG = "aiinfra-managed-by"
OWNER_TAG = "aiinfra-owner"


# -- aws -----------------------------------------------------------------------------------------------------------
def test_aws_another_owner_is_refused_force_deletes_and_a_foreign_instance_is_left_alone(proxy):
    cluster = unique_name("own")
    ec2 = aws.client(proxy.moto_url)
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": [aws.IMAGE]}])["Images"][0]["ImageId"]
    # someone's instance tagged with our cluster id by hand, without aiinfra-managed-by: never ours
    foreign = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": CLUSTER_TAG, "Value": cluster}]}])["Instances"][0]["InstanceId"]

    _proc, res = aws.run(proxy, cluster, gpu_cluster_size=2, gpu_cluster_owner="alice@lab")
    assert res["Create the nodes"]["plan"]["create"] == [0, 1]               # the foreign instance is no node
    ours = [i for i in aws.end_state(proxy, cluster)["live"] if i["InstanceId"] != foreign]
    assert len(ours) == 2
    assert all(dict((t["Key"], t["Value"]) for t in i["Tags"])[OWNER_TAG] == "alice@lab" for i in ours)

    # bob shrinking alice's cluster, and tearing it down: refused, nothing deleted
    proc, _res = aws.run(proxy, cluster, gpu_cluster_size=1, gpu_cluster_owner="bob@lab", check=False)
    assert proc.returncode != 0 and "was made by alice@lab, not bob@lab" in proc.stdout, proc.stdout[-3000:]
    proc, _res = aws.run(proxy, cluster, playbook="playbooks/teardown.yml", gpu_cluster_owner="bob@lab", check=False)
    assert proc.returncode != 0 and "refusing to delete its node(s) of rank 0, 1" in proc.stdout
    assert "TerminateInstances" not in proxy.calls
    assert len(aws.end_state(proxy, cluster)["live"]) == 3

    # with gpu_cluster_force it goes; the foreign instance stays, and the run names it
    proc, res = aws.run(proxy, cluster, playbook="playbooks/teardown.yml", gpu_cluster_owner="bob@lab",
                        gpu_cluster_force=True)
    assert [i["InstanceId"] for i in aws.end_state(proxy, cluster)["live"]] == [foreign]
    assert any(foreign in k for k in res["Remove the nodes and the cluster's resources"]["kept"])
    assert "Kept (not made by the collection for %s): instance/%s" % (cluster, foreign) in proc.stdout


def test_aws_a_failed_rollback_is_a_warning_naming_what_is_left(proxy):
    """The nodes never run (wait_timeout), and the role may not terminate them: the failure, and a warning naming
    the instances left running."""
    cluster = unique_name("own")
    proxy.stuck_pending = True
    proxy.denied_actions.add("TerminateInstances")
    proc, res = aws.run(proxy, cluster, check=False, gpu_cluster_size=2, gpu_cluster_wait_timeout=3)
    assert proc.returncode != 0
    created = res["Create the nodes"]
    assert "timed out after 3s waiting for 2 node(s)" in created["msg"] and created["rollback_left"] is True
    live = aws.end_state(proxy, cluster)["live"]
    assert len(live) == 2
    (warning,) = [w for w in created.get("warnings", []) if "rollback" in w]
    assert "rollback of cluster %s failed" % cluster in warning and "not authorized" in warning.lower()
    for inst in live:
        assert inst["InstanceId"] in warning
    proxy.denied_actions.clear()
    proxy.stuck_pending = False
    aws.run(proxy, cluster, playbook="playbooks/teardown.yml")
    assert not aws.end_state(proxy, cluster)["live"]


def test_aws_a_cluster_needs_a_name_given_on_purpose(proxy, tmp_path):
    cluster = unique_name("own")
    values = aws.cluster_vars(proxy, cluster)
    del values["gpu_cluster_name"]
    env = aws.aws_env(proxy, cluster, tmp=str(tmp_path))
    del env["GPU_CLUSTER_NAME"]
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    proc = run_playbook("playbooks/provision.yml", extra_vars=values, inventory="inventories/aws", env=env, check=False)
    assert proc.returncode != 0
    assert "no cluster name is set" in proc.stdout and "GPU_CLUSTER_NAME" in proc.stdout, proc.stdout[-3000:]
    # the inventory plugin refuses too (no silent "demo")
    assert "no cluster name on cloud aws" in proc.stdout
    assert not [c for c in proxy.calls if not c.startswith("Describe")], dict(proxy.calls)
    # nothing was made, under any name
    assert not aws.client(proxy.moto_url).describe_instances(
        Filters=[{"Name": "tag-key", "Values": [CLUSTER_TAG]}, {"Name": "tag:%s" % CLUSTER_TAG, "Values": ["demo"]}]
    )["Reservations"]


# -- gcp -----------------------------------------------------------------------------------------------------------


def test_gcp_owner_label_refusal_force_and_a_foreign_instance_left_alone(double):
    cluster = unique_name("own")
    prov = gcp.provider(double)
    alice = base.NodeSpec(cluster=cluster, ssh_public_key=gcp.PUBKEY, instance_type=gcp.TYPE, image=gcp.IMAGE,
                          owner="Alice@lab.example")
    prov.preflight(alice)
    reconcile.ensure_present(prov, alice, 2, wait_timeout=60)
    insts = double.live_instances(CLUSTER_TAG, cluster)
    assert [i["labels"][OWNER_TAG] for i in insts] == ["alice_lab_example"] * 2      # a label value GCP accepts
    (bulk,) = double.mutations("compute.instances.bulkInsert")
    metadata = dict((m["key"], m["value"]) for m in bulk["body"]["instanceProperties"]["metadata"]["items"])
    assert metadata["block-project-ssh-keys"] == "TRUE"

    # a foreign instance with our cluster label, without aiinfra-managed-by
    body = {"name": "someones-vm", "machineType": "zones/us-central1-a/machineTypes/n1-standard-8",
            "labels": {CLUSTER_TAG: cluster},
            "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
                "sourceImage": bulk["body"]["instanceProperties"]["disks"][0]["initializeParams"]["sourceImage"]}}],
            "networkInterfaces": [{"network": bulk["body"]["instanceProperties"]["networkInterfaces"][0]["network"]}]}
    op = prov.api.call("POST", prov.api.path("zones", "us-central1-a", "instances"), body=body)
    prov.api.wait(op, prov.clock() + 30)
    assert len(double.live_instances(CLUSTER_TAG, cluster)) == 3
    assert sorted(n.rank for n in prov.list_nodes(cluster)) == [0, 1]

    bob = base.NodeSpec(cluster=cluster, ssh_public_key=gcp.PUBKEY, instance_type=gcp.TYPE, image=gcp.IMAGE,
                        owner="bob@lab")
    with pytest.raises(ConfigError, match="was made by alice_lab_example, not bob_lab: refusing to delete"):
        reconcile.ensure_present(prov, bob, 1, wait_timeout=60)
    with pytest.raises(ConfigError, match="refusing to replace its node"):
        reconcile.ensure_present(prov, bob, 2, wait_timeout=60, replace=[1])
    with pytest.raises(ConfigError, match="refusing to delete its node"):
        reconcile.ensure_absent(prov, cluster, owner="bob@lab")
    assert not double.mutations("compute.instances.delete")
    # alice's own shrink needs no force
    reconcile.ensure_present(prov, alice, 1, wait_timeout=60)
    result = reconcile.ensure_absent(prov, cluster, owner="bob@lab", force=True)
    assert [i["name"] for i in double.live_instances(CLUSTER_TAG, cluster)] == ["someones-vm"]
    assert result["kept"] == ["instance/someones-vm (carries %s=%s but not %s)" % (CLUSTER_TAG, cluster, MANAGED_TAG)]


def test_gcp_a_cluster_needs_a_name_given_on_purpose(double, tmp_path):
    values = gcp.cluster_vars(double, "x")
    del values["gpu_cluster_name"]
    env = gcp.gcp_env(double, "x")
    del env["GPU_CLUSTER_NAME"]
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    proc = run_playbook("playbooks/teardown.yml", extra_vars=values, inventory="inventories/gcp", env=env, check=False)
    assert proc.returncode != 0 and "no cluster name is set" in proc.stdout, proc.stdout[-3000:]
    assert not double.mutations()


# -- azure ---------------------------------------------------------------------------------------------------------
def test_azure_refusal_force_and_a_group_holding_a_foreign_resource_is_kept_and_named(arm):
    cluster = unique_name("own")
    group = "aiinfra-%s" % cluster
    az.run(arm, cluster, gpu_cluster_size=2, gpu_cluster_owner="alice@lab")
    vms = az.end_state(arm, cluster)["vms"]
    assert [v["tags"][OWNER_TAG] for v in vms] == ["alice@lab"] * 2
    # someone put a public IP of theirs into the cluster's group, tagged with the cluster id by hand
    foreign = arm.res_id(group, "Microsoft.Network/publicIPAddresses", "someones-ip")
    with arm.lock:
        arm.resources[foreign.lower()] = {
            "id": foreign, "name": "someones-ip", "type": "Microsoft.Network/publicIPAddresses", "location": "eastus",
            "tags": {CLUSTER_TAG: cluster}, "sku": {"name": "Standard"},
            "properties": {"provisioningState": "Succeeded", "publicIPAllocationMethod": "Static"}}

    proc, _res = az.run(arm, cluster, playbook="playbooks/teardown.yml", gpu_cluster_owner="bob@lab", check=False)
    assert proc.returncode != 0 and "was made by alice@lab, not bob@lab" in proc.stdout, proc.stdout[-3000:]
    assert len(az.end_state(arm, cluster)["vms"]) == 2

    proc, res = az.run(arm, cluster, playbook="playbooks/teardown.yml", gpu_cluster_owner="bob@lab",
                       gpu_cluster_force=True)
    assert group.lower() in arm.groups                                        # the group stays
    assert [r["name"] for r in arm.in_group(group)] == ["someones-ip"]      # with only the foreign resource in it
    kept = res["Remove the nodes and the cluster's resources"]["kept"]
    assert any(k.startswith("resourceGroups/%s (it holds someones-ip)" % group) for k in kept), kept
    assert any(k.startswith("publicIPAddresses/someones-ip") for k in kept), kept
    assert "Kept (not made by the collection for %s)" % cluster in proc.stdout
