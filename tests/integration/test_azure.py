"""The azure cloud against tests/integration/arm_double.py (Resource Manager + token endpoint over HTTPS on loopback).

Every scenario runs the real playbooks (playbooks/provision.yml, teardown.yml) with inventories/azure through
ansible-playbook, so the modules are packaged by AnsiballZ and reach the double through azure-identity and the
azure-mgmt-* SDKs, and then checks the end state from the double's own records, never from the module's output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import KEY, ROOT, VENV_BIN, ansible_env, plain, run_playbook, task_results, unique_name
from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT
from cloud_servers import arm  # noqa: F401  pylint: disable=unused-import

CLUSTER_TAG = "aiinfra-gpu-cluster"
SIZE = "Standard_ND96isr_H100_v5"
IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
ADMIN = "198.51.100.0/24"
VM = "Microsoft.Compute/virtualMachines"


@pytest.fixture
def cluster(arm):
    name = unique_name("az")
    yield name
    # the double is in-process: forget what this test made (teardown itself is tested on its own)
    with arm.lock:
        for rid in [r for r in arm.resources if ("/resourcegroups/aiinfra-%s/" % name) in r]:
            del arm.resources[rid]
        arm.groups.pop("aiinfra-%s" % name, None)
        arm.groups.pop("byo-%s" % name, None)
        arm.alloc_fail.clear()
        arm.quota.clear()
        arm.fail_ops.clear()
        arm.restricted.clear()
        arm.throttle = 0.0
        arm.lro_seconds = 0.05


def azure_env(arm, cluster, names="identity", **extra):
    env = dict(arm.env(), GPU_CLUSTER_NAME=cluster, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               AZURE_SUBSCRIPTION_ID=SUBSCRIPTION, AZURE_CLIENT_ID=CLIENT_ID)
    if names == "identity":
        env.update(AZURE_TENANT_ID=TENANT, AZURE_CLIENT_SECRET=CLIENT_SECRET)
    elif names == "awx":
        env.update(AZURE_TENANT=TENANT, AZURE_SECRET=CLIENT_SECRET)
    env.update(extra)
    return env


def cluster_vars(arm, cluster, **extra):
    values = {
        "gpu_cluster_name": cluster,
        "gpu_cluster_size": 4,
        "gpu_cluster_instance_type": SIZE,
        "gpu_cluster_image": IMAGE,
        "gpu_cluster_admin_cidrs": [ADMIN],
        "gpu_cluster_ssh_private_key_file": KEY,
        "gpu_cluster_wait_timeout": 120,
        "gpu_cluster_cloud_options": {"location": "eastus", "endpoint_url": arm.url},
        "gpu_cluster_instance_options": {"placements": [{"location": "eastus"}, {"location": "westus2"}],
                                         "root_volume_size": 256},
    }
    values.update(extra)
    return values


def run(arm, cluster, playbook="playbooks/provision.yml", args=(), env=None, check=True, **extra):
    proc = run_playbook(playbook, *args, extra_vars=cluster_vars(arm, cluster, **extra), inventory="inventories/azure/hosts.yml",
                        env=env or azure_env(arm, cluster), timeout=300, check=check)
    return proc, task_results(proc.stdout)


def of_type(items, rtype):
    return [i for i in items if i["type"].lower() == rtype.lower()]


def end_state(arm, cluster):
    """Everything in the double carrying the cluster tag, by type, and the cluster's VMs by rank."""
    tagged = arm.tagged(CLUSTER_TAG, cluster)
    vms = of_type(tagged, VM)
    return {"tagged": tagged, "vms": vms,
            "ranks": sorted(int(v["tags"]["aiinfra-gpu-rank"]) for v in vms),
            "group": arm.in_group("aiinfra-%s" % cluster)}


def nodes_of(results):
    return results["Create the nodes"]["nodes"]


# 1 ---------------------------------------------------------------------------------------------------------------
def test_cluster_with_firewall_placement_group_then_rerun_changes_nothing_then_teardown_leaves_nothing(
        arm, cluster, tmp_path):
    _proc, results = run(arm, cluster)
    state = end_state(arm, cluster)
    assert state["ranks"] == [0, 1, 2, 3]
    assert [n["name"] for n in nodes_of(results)] == ["%s-%d" % (cluster, r) for r in range(4)]
    assert all(n["ssh_host"] and n["private_address"].startswith("10.42.") for n in nodes_of(results))
    group = state["group"]
    by_id = dict((r["id"].lower(), r) for r in group)
    ppgs = of_type(group, "Microsoft.Compute/proximityPlacementGroups")
    avsets = of_type(group, "Microsoft.Compute/availabilitySets")
    assert len(ppgs) == 1 and len(avsets) == 1 and avsets[0]["sku"]["name"] == "Aligned"
    assert avsets[0]["properties"]["proximityPlacementGroup"]["id"].lower() == ppgs[0]["id"].lower()
    for vm in state["vms"]:
        props = vm["properties"]
        assert props["availabilitySet"]["id"].lower() == avsets[0]["id"].lower()
        assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
        assert props["storageProfile"]["osDisk"]["diskSizeGB"] == 256
        linux = props["osProfile"]["linuxConfiguration"]
        assert linux["disablePasswordAuthentication"] is True
        assert linux["ssh"]["publicKeys"][0]["path"] == "/home/gpuadmin/.ssh/authorized_keys"
        assert linux["ssh"]["publicKeys"][0]["keyData"] == open(KEY + ".pub").read().strip()
        ref = props["networkProfile"]["networkInterfaces"][0]
        assert ref["properties"]["deleteOption"] == "Delete"
        nic = by_id[ref["id"].lower()]
        assert nic["properties"]["enableAcceleratedNetworking"] is True
        pip = by_id[nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"].lower()]
        assert pip["sku"]["name"] == "Standard" and pip["properties"]["deleteOption"] == "Delete"
        assert pip["properties"]["publicIPAllocationMethod"] == "Static"
    for res in group:
        if res["type"] != "Microsoft.Compute/disks":
            assert res["tags"][CLUSTER_TAG] == cluster, res["id"]
    nsg = of_type(group, "Microsoft.Network/networkSecurityGroups")[0]
    inbound = dict((r["name"], r["properties"]) for r in nsg["properties"]["securityRules"]
                   if r["properties"]["direction"] == "Inbound")
    ssh = [r for r in inbound.values() if r["destinationPortRange"] == "22"]
    assert [(r["sourceAddressPrefix"], r["access"]) for r in ssh] == [(ADMIN, "Allow")]
    assert inbound["deny-internet-inbound"]["access"] == "Deny"
    vnet = of_type(group, "Microsoft.Network/virtualNetworks")[0]
    assert vnet["properties"]["subnets"][0]["properties"]["networkSecurityGroup"]["id"].lower() == nsg["id"].lower()

    # unchanged re-run: nothing changes, nothing is written
    arm.reset_counts()
    _proc, again = run(arm, cluster)
    assert again["Create the nodes"]["changed"] is False
    assert again["Open SSH from the admin networks and all traffic inside the cluster"]["changed"] is False
    writes = dict((k, v) for k, v in arm.calls.items() if not k.startswith(("GET", "POST token")))
    assert writes == {}, writes
    assert end_state(arm, cluster)["ranks"] == [0, 1, 2, 3]

    # the inventory plugin finds the nodes again, in rank order (inventories/azure's file + the double's endpoint)
    inventory = tmp_path / "nodes.gpu_cluster.yml"
    inventory.write_text(open(os.path.join(ROOT, "inventories/azure/gpu_nodes.gpu_cluster.yml")).read()
                         + "endpoint_url: %s\n" % arm.url)
    inv = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", str(inventory), "--list"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=ansible_env(azure_env(arm, cluster)),
                         check=False)
    assert inv.returncode == 0, inv.stderr
    listing = json.loads(inv.stdout)
    assert listing["gpu_nodes"]["hosts"] == ["%s-%d" % (cluster, r) for r in range(4)]
    hostvars = listing["_meta"]["hostvars"]
    assert [plain(hostvars["%s-%d" % (cluster, r)]["gpu_cluster_rank"]) for r in range(4)] == list(range(4))

    _proc, down = run(arm, cluster, "playbooks/teardown.yml")
    assert down["Remove the nodes and the cluster's resources"]["changed"] is True
    assert end_state(arm, cluster)["tagged"] == []
    assert end_state(arm, cluster)["group"] == []


# 2 ---------------------------------------------------------------------------------------------------------------
def test_check_mode_creates_nothing_and_scaling_3_4_2_under_30_percent_throttling_keeps_ranks(arm, cluster):
    proc, results = run(arm, cluster, args=["--check", "--start-at-task", "Create the nodes"], gpu_cluster_size=3)
    assert results["Create the nodes"]["plan"]["create"] == [0, 1, 2]
    assert arm.tagged(CLUSTER_TAG, cluster) == []

    # 30 % of ARM calls answered 429 + Retry-After: still exactly N nodes, NICs and IPs, never a duplicate
    arm.throttle = 0.3
    throttled = arm.throttled
    run(arm, cluster, gpu_cluster_size=3)
    first = dict((v["tags"]["aiinfra-gpu-rank"], v["properties"]["vmId"]) for v in end_state(arm, cluster)["vms"])
    assert sorted(first) == ["0", "1", "2"]
    scale = ["--start-at-task", "Create the nodes"]
    _proc, up = run(arm, cluster, args=scale, gpu_cluster_size=4)
    assert up["Create the nodes"]["plan"] == {"keep": [0, 1, 2], "create": [3], "delete": [], "start": [], "replace": []}
    group = end_state(arm, cluster)["group"]
    assert len(of_type(group, "Microsoft.Network/networkInterfaces")) == 4
    assert len(of_type(group, "Microsoft.Network/publicIPAddresses")) == 4
    _proc, down = run(arm, cluster, args=scale, gpu_cluster_size=2)
    assert down["Create the nodes"]["plan"]["delete"] == [3, 2]
    assert arm.throttled - throttled > 10
    state = end_state(arm, cluster)
    assert dict((v["tags"]["aiinfra-gpu-rank"], v["properties"]["vmId"]) for v in state["vms"]) == \
        dict((k, first[k]) for k in ("0", "1"))
    # the removed ranks took their NIC, public IP and disk with them
    names = sorted(r["name"] for r in state["group"] if r["type"] != "Microsoft.Compute/disks")
    assert not [n for n in names if n.startswith(("%s-2" % cluster, "%s-3" % cluster))], names
    assert len(of_type(state["group"], "Microsoft.Compute/disks")) == 2


# 3 ---------------------------------------------------------------------------------------------------------------
def test_allocation_failure_in_first_location_lands_in_the_second(arm, cluster):
    arm.alloc_fail.add(("eastus", None))
    _proc, results = run(arm, cluster, gpu_cluster_size=2)
    state = end_state(arm, cluster)
    assert state["ranks"] == [0, 1]
    assert set(v["location"] for v in state["vms"]) == {"westus2"}
    landed = results["Create the nodes"]["cluster"]
    assert landed["landed"]["location"] == "westus2"
    assert "AllocationFailed" in landed["failover"][0]["error"]
    # the failed VMs were deleted with their NICs and IPs; the nodes' network, NSG and placement are in westus2
    nics = of_type(state["group"], "Microsoft.Network/networkInterfaces")
    assert sorted(n["location"] for n in nics) == ["westus2", "westus2"]
    # the same rules, "self" being the cluster's application security group of each location (every NIC is in it)
    nsgs = dict((n["location"], [(r["name"], r["properties"]) for r in n["properties"]["securityRules"]])
                for n in of_type(state["group"], "Microsoft.Network/networkSecurityGroups"))
    asgs = dict((a["location"], a["id"]) for a in of_type(state["group"], "Microsoft.Network/applicationSecurityGroups"))
    assert sorted(asgs) == ["eastus", "westus2"]
    assert json.dumps(nsgs["westus2"]).replace(asgs["westus2"], "ASG") == json.dumps(nsgs["eastus"]).replace(
        asgs["eastus"], "ASG")
    assert asgs["westus2"] in json.dumps(nsgs["westus2"])
    assert all([g["id"] for g in c["properties"]["applicationSecurityGroups"]] == [asgs["westus2"]]
               for n in nics for c in n["properties"]["ipConfigurations"])


# 4 ---------------------------------------------------------------------------------------------------------------
def test_quota_fails_fast_naming_the_family_and_limit_and_leaves_nothing(arm, cluster):
    arm.quota[("eastus", "standardNDSH100v5Family")] = 192
    arm.reset_counts()
    proc, results = run(arm, cluster, check=False, gpu_cluster_size=3)
    assert proc.returncode != 0
    msg = results["Create the nodes"]["msg"]
    assert "standardNDSH100v5Family" in msg and "limit 192" in msg, msg
    assert results["Create the nodes"]["error"]["kind"] == "quota"
    # fail fast: no failover to westus2, and what was made is removed
    assert arm.calls["PUT Microsoft.Compute/virtualMachines"] <= 3 + 2
    # a failed first creation leaves the cluster as it found it: nothing (the firewall's NSG and group too)
    assert end_state(arm, cluster)["tagged"] == []


# 6 ---------------------------------------------------------------------------------------------------------------
def test_controller_killed_mid_create_then_rerun_converges_on_exactly_n(arm, cluster):
    arm.lro_seconds = 1.5
    arm.reset_counts()
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/provision.yml", "-i", "inventories/azure/hosts.yml", "-e",
           json.dumps(cluster_vars(arm, cluster, gpu_cluster_size=3))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(azure_env(arm, cluster)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while arm.calls["PUT Microsoft.Compute/virtualMachines"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert arm.calls["PUT Microsoft.Compute/virtualMachines"] >= 1
    arm.lro_seconds = 0.05
    _proc, results = run(arm, cluster, gpu_cluster_size=3)
    state = end_state(arm, cluster)
    assert state["ranks"] == [0, 1, 2]
    assert len(of_type(state["group"], "Microsoft.Network/networkInterfaces")) == 3
    assert [n["rank"] for n in nodes_of(results)] == [0, 1, 2]


# 8 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("names", ["awx", "identity"])
def test_awx_and_azure_identity_variable_names_both_work(arm, cluster, names):
    env = azure_env(arm, cluster, names=names)
    tokens = len(arm.tokens)
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "inventories/azure/hosts.yml", "-m", "aiinfra.gpu_cluster.instance_info",
         "-a", json.dumps({"cloud": "azure", "cluster": cluster, "endpoint_url": arm.url}), "-e",
         "ansible_python_interpreter=%s" % os.path.join(VENV_BIN, "python")],
        cwd=ROOT, env=ansible_env(dict(env, ANSIBLE_STDOUT_CALLBACK="default")), capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exists: false" in proc.stdout
    assert len(arm.tokens) == tokens + 1


# 9 ---------------------------------------------------------------------------------------------------------------
BAD_INPUT = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    aiinfra.gpu_cluster.instance:
      cloud: azure
      cluster: "{{ cluster }}"
      count: 2
      instance_type: Standard_ND96isr_H100_v5
      image: microsoft-dsvm:ubuntu-hpc:2204:latest
      ssh_public_key: "{{ key }}"
      endpoint_url: "{{ endpoint }}"
      location: eastus
  tasks:
    - {name: unknown location, aiinfra.gpu_cluster.instance: {location: atlantis}, register: r1, ignore_errors: true}
    - {name: restricted size, aiinfra.gpu_cluster.instance: {instance_type: Standard_NC4as_T4_v3}, register: r2,
       ignore_errors: true}
    - {name: unknown image, aiinfra.gpu_cluster.instance: {image: "canonical:nope:22_04:latest"}, register: r3,
       ignore_errors: true}
    - {name: no subscription, aiinfra.gpu_cluster.instance: {}, register: r4, ignore_errors: true,
       environment: {AZURE_SUBSCRIPTION_ID: ""}}
    - {name: rejected secret, aiinfra.gpu_cluster.instance: {}, register: r5, ignore_errors: true,
       environment: {AZURE_CLIENT_SECRET: "", AZURE_SECRET: "wrong-secret-xyz"}}
    - {name: missing subnet, aiinfra.gpu_cluster.instance: {subnet_id: "{{ subnet }}"}, register: r6,
       ignore_errors: true}
    # the user's own subnet still needs the cluster's firewall: its NSG goes on every NIC
    - {name: byo subnet without firewall, aiinfra.gpu_cluster.instance: {subnet_id: "{{ byo_subnet }}",
                                                                          public_ip: false},
       register: r7, ignore_errors: true}
    - name: The firewall
      aiinfra.gpu_cluster.firewall: {cloud: azure, cluster: "{{ cluster }}", endpoint_url: "{{ endpoint }}",
                                     location: eastus, admin_cidrs: [198.51.100.0/24]}
    # not bad input: the user's own subnet, where the VM's operation ends Failed
    - {name: failed operation, aiinfra.gpu_cluster.instance: {subnet_id: "{{ byo_subnet }}", public_ip: false},
       register: r8, ignore_errors: true}
    - name: Report
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ [r1, r2, r3, r4, r5, r6, r7, r8] | map(attribute='msg') | list | to_json }}"
        mode: "0600"
"""


def test_bad_input_gets_a_clear_error_and_creates_nothing_and_a_failed_operation_leaves_nothing(
        arm, cluster, tmp_path):
    arm.restricted.add(("Standard_NC4as_T4_v3", "eastus"))
    byo_subnet = arm.add_network("byo-%s" % cluster, "byo", "nodes")
    arm.fail_ops["virtualMachines"] = 1
    arm.reset_counts()
    playbook = tmp_path / "bad.yml"
    playbook.write_text(BAD_INPUT)
    out = tmp_path / "msgs.json"
    subnet = "/subscriptions/%s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/hub/subnets/gpu" % SUBSCRIPTION
    run_playbook(str(playbook), "-i", "inventories/azure/hosts.yml", extra_vars={
        "cluster": cluster, "key": open(KEY + ".pub").read().strip(), "endpoint": arm.url, "out": str(out),
        "subnet": subnet, "byo_subnet": byo_subnet}, env=dict(azure_env(arm, cluster), ANSIBLE_STDOUT_CALLBACK="default"), timeout=300)
    msgs = json.loads(out.read_text())
    assert "location atlantis is not an Azure location" in msgs[0]
    assert "Standard_NC4as_T4_v3 is restricted in eastus" in msgs[1]
    assert "image canonical:nope:22_04:latest does not resolve in eastus" in msgs[2]
    assert "no Azure subscription given" in msgs[3] and "AZURE_SUBSCRIPTION_ID" in msgs[3]
    assert "refused the credentials" in msgs[4] and "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_SECRET" in msgs[4]
    assert "wrong-secret-xyz" not in msgs[4]
    assert "subnet_id %s does not exist" % subnet in msgs[5]
    assert "cluster %s has no firewall" % cluster in msgs[6]
    assert "InternalOperationError" in msgs[7]
    # the failed call got as far as the VMs, and removed what it made (NICs on the user's subnet, the group; a failed
    # first creation leaves the cluster as it found it, the firewall's NSG too)
    assert arm.calls["PUT Microsoft.Compute/virtualMachines"] == 2
    assert arm.calls["DELETE resourceGroups"] == 1
    assert arm.tagged(CLUSTER_TAG, cluster) == []
    assert arm.in_group("aiinfra-%s" % cluster) == []
