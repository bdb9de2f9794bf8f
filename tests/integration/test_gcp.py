"""The gcp cloud against the Compute API double (tests/integration/gce_double.py: HTTP on loopback).

The double checks every request body against the Compute v1 discovery document, answers with operations that go
PENDING -> RUNNING -> DONE and serves requestId idempotency. Credentials are real: a service-account key file whose
token_uri is the double's, so google-auth signs a JWT and fetches a token as it would from Google.

The lifecycle and the crash run the real playbooks (provision.yml, teardown.yml, the inventory plugin) with
inventories/gcp through ansible-playbook; failover, quota, throttling and bad input drive the provider through
reconcile in-process (the module's whole behaviour, over the same HTTP), which keeps the suite fast. The end state is
always read from the double itself, never from the module's output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import KEY, ROOT, VENV_BIN, ansible_env, plain, run_playbook, task_results, unique_name
from cloud_servers import gce as double  # noqa: F401  pylint: disable=unused-import

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, QuotaError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

TYPE = "a3-highgpu-8g"
IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
ADMIN = "198.51.100.0/24"
CLUSTER_LABEL = "aiinfra-gpu-cluster"
PUBKEY = open(KEY + ".pub").read().strip() if os.path.exists(KEY + ".pub") else ""


@pytest.fixture
def cluster():
    return unique_name("gcp")


def provider(double, **opts):
    options = {"credentials_file": double.sa_file, "endpoint_url": double.url, "allow_network_rules": True,
               "placements": [{"zone": "us-central1-a"}, {"zone": "us-central1-b"}]}
    options.update(opts)
    return GcpProvider(options)


def spec(cluster, instance_type=TYPE, image=IMAGE):
    return base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type, image=image)


def present(double, cluster, count, timeout=60, **opts):
    nodes_spec = spec(cluster, opts.pop("instance_type", TYPE))
    prov = provider(double, **opts)
    prov.preflight(nodes_spec)
    return reconcile.ensure_present(prov, nodes_spec, count, wait_timeout=timeout)


# -- through ansible-playbook ----------------------------------------------------------------------------------
def gcp_env(double, cluster):
    return {"GCP_SERVICE_ACCOUNT_FILE": double.sa_file, "GPU_CLUSTER_NAME": cluster,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}


def cluster_vars(double, cluster, **extra):
    values = {
        "gpu_cluster_name": cluster,
        "gpu_cluster_size": 3,
        "gpu_cluster_instance_type": TYPE,
        "gpu_cluster_image": IMAGE,
        "gpu_cluster_admin_cidrs": [ADMIN],
        "gpu_cluster_ssh_private_key_file": KEY,
        "gpu_cluster_wait_timeout": 60,
        # the double's default network carries GCP's default-allow-* rules (test_firewall_truth.py: the refusal)
        "gpu_cluster_allow_network_rules": True,
        "gpu_cluster_cloud_options": {"region": "us-central1", "endpoint_url": double.url},
        "gpu_cluster_instance_options": {"placements": [{"zone": "us-central1-a"}, {"zone": "us-central1-b"}],
                                         "root_volume_size": 200},
    }
    values.update(extra)
    return values


def run(double, cluster, playbook="playbooks/provision.yml", args=(), check=True, **extra):
    proc = run_playbook(playbook, *args, extra_vars=cluster_vars(double, cluster, **extra), inventory="inventories/gcp",
                        env=gcp_env(double, cluster), timeout=300, check=check)
    return proc, task_results(proc.stdout)


def ranks_of(double, cluster):
    return sorted(int(i["labels"].get("aiinfra-gpu-rank", -1)) for i in double.live_instances(CLUSTER_LABEL, cluster))


# 1 ------------------------------------------------------------------------------------------------------------
def test_lifecycle_create_rerun_scale_check_inventory_teardown(double, cluster):
    _proc, results = run(double, cluster)
    insts = double.live_instances(CLUSTER_LABEL, cluster)
    assert sorted(i["name"] for i in insts) == ["%s-%d" % (cluster, r) for r in range(3)]
    assert ranks_of(double, cluster) == [0, 1, 2]
    assert set(i["zone"].rsplit("/", 1)[-1] for i in insts) == {"us-central1-a"}
    assert double.calls["compute.instances.bulkInsert"] == 1
    (bulk,) = double.mutations("compute.instances.bulkInsert")
    props = bulk["body"]["instanceProperties"]
    assert bulk["body"]["count"] == bulk["body"]["minCount"] == "3"
    assert props["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert props["resourcePolicies"] == ["aiinfra-%s" % cluster]  # names, not URLs
    assert props["tags"]["items"] == ["aiinfra-%s" % cluster]
    keys = dict((m["key"], m["value"]) for m in props["metadata"]["items"])
    assert keys["ssh-keys"] == "gpuadmin:%s" % PUBKEY
    assert props["disks"][0]["initializeParams"]["diskSizeGb"] == "200"
    assert props["disks"][0]["initializeParams"]["sourceImage"].endswith("common-cu124-v20260101-debian-11-py310")
    assert len(bulk["query"]["requestId"]) == 36
    assert double.policies[("us-central1", "aiinfra-%s" % cluster)]["groupPlacementPolicy"] == {
        "collocation": "COLLOCATED"}
    # the firewall: SSH only from the admin network, everything between nodes carrying the tag
    ssh = double.firewalls["aiinfra-%s-tcp22" % cluster]
    assert ssh["sourceRanges"] == [ADMIN] and ssh["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}]
    assert ssh["targetTags"] == ["aiinfra-%s" % cluster]
    internal = double.firewalls["aiinfra-%s-internal" % cluster]
    assert internal["sourceTags"] == ["aiinfra-%s" % cluster] and "sourceRanges" not in internal
    created = results["Create the nodes"]
    assert [n["rank"] for n in created["nodes"]] == [0, 1, 2]
    assert all(n["state"] == "running" and n["ssh_host"].startswith("34.") for n in created["nodes"])
    assert created["cluster"]["landed"]["zone"] == "us-central1-a"

    # unchanged re-run: nothing changes, only reads
    double.log.clear()
    _proc, results = run(double, cluster)
    assert results["Create the nodes"]["changed"] is False
    assert results["Open SSH from the admin networks and all traffic inside the cluster"]["changed"] is False
    assert not double.mutations(), double.mutations()
    assert len(double.log) <= 4, [e["id"] for e in double.log]

    # check mode with --diff: the plan for 5, nothing created
    _proc, results = run(double, cluster, args=("--check", "--diff"), gpu_cluster_size=5)
    assert results["Create the nodes"]["plan"]["create"] == [3, 4]
    assert "to create" in json.dumps(results["Create the nodes"]["diff"])
    assert not double.mutations() and ranks_of(double, cluster) == [0, 1, 2]

    # scale 3 -> 4 (3 -> 4 -> 2 in-process below): ranks stay, the new node joins the same zone; and a changed
    # admin CIDR list is patched into the same rule
    ids = dict((i["name"], i["id"]) for i in double.live_instances(CLUSTER_LABEL, cluster))
    _proc, results = run(double, cluster, gpu_cluster_size=4, gpu_cluster_admin_cidrs=[ADMIN, "203.0.113.0/24"])
    assert ranks_of(double, cluster) == [0, 1, 2, 3]
    assert all(ids[i["name"]] == i["id"] for i in double.live_instances(CLUSTER_LABEL, cluster) if i["name"] in ids)
    assert set(i["zone"].rsplit("/", 1)[-1] for i in double.live_instances(CLUSTER_LABEL, cluster)) == {
        "us-central1-a"}
    assert results["Create the nodes"]["plan"] == {"keep": [0, 1, 2], "create": [3], "delete": [], "start": [], "replace": []}
    assert double.calls["compute.firewalls.patch"] == 1
    assert sorted(double.firewalls["aiinfra-%s-tcp22" % cluster]["sourceRanges"]) == ["198.51.100.0/24",
                                                                                      "203.0.113.0/24"]

    # the inventory plugin lists the nodes in rank order
    env = ansible_env(gcp_env(double, cluster))
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    env["GCP_PROJECT"] = double.project
    inv = os.path.join(str(double.sa_file) + ".gpu_cluster.yml")
    with open(inv, "w") as handle:
        handle.write("plugin: aiinfra.gpu_cluster.cluster\ncloud: gcp\nendpoint_url: %s\n" % double.url)
    out = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", inv, "--list"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    inventory = json.loads(out.stdout)
    assert inventory["gpu_nodes"]["hosts"] == ["%s-%d" % (cluster, r) for r in range(4)]
    hostvars = inventory["_meta"]["hostvars"]
    assert [plain(hostvars["%s-%d" % (cluster, r)]["gpu_cluster_rank"]) for r in range(4)] == [0, 1, 2, 3]
    assert set(plain(h["ansible_user"]) for h in hostvars.values()) == {"gpuadmin"}

    # instance_info reads the same, changing nothing
    out = subprocess.run([os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "aiinfra.gpu_cluster.instance_info",
                          "-a", json.dumps({"cloud": "gcp", "cluster": cluster, "endpoint_url": double.url}),
                          "-e", "ansible_python_interpreter=%s" % os.path.join(VENV_BIN, "python")],
                         cwd=ROOT, env=dict(env, ANSIBLE_CALLBACK_RESULT_FORMAT="json"), capture_output=True, text=True,
                         check=True, timeout=120)
    info = json.loads(out.stdout.split(" => ", 1)[1])
    assert [n["rank"] for n in info["nodes"]] == [0, 1, 2, 3] and info["changed"] is False
    assert "resource-policy/aiinfra-%s (us-central1)" % cluster in info["resources"]
    assert info["cluster"]["project"] == double.project

    # teardown leaves nothing carrying the cluster, and a second one changes nothing
    _proc, results = run(double, cluster, playbook="playbooks/teardown.yml")
    assert double.labelled(cluster) == {"instances": [], "firewalls": [], "policies": []}
    deleted = " ".join(results["Remove the nodes and the cluster's resources"]["deleted_resources"])
    assert "resource-policy/aiinfra-%s" % cluster in deleted and "firewall/aiinfra-%s-tcp22" % cluster in deleted
    assert reconcile.ensure_absent(provider(double), cluster)["changed"] is False


# 2 ------------------------------------------------------------------------------------------------------------
def test_controller_killed_mid_bulkinsert_rerun_converges_on_exactly_n(double, cluster):
    double.hold_operations = {"bulkInsert"}  # it stays PENDING: the controller is killed while waiting for it
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/provision.yml", "-i", "inventories/gcp", "-e",
           json.dumps(cluster_vars(double, cluster))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(gcp_env(double, cluster)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while double.calls["compute.instances.bulkInsert"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert double.calls["compute.instances.bulkInsert"] == 1, "bulkInsert never arrived"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert not double.live_instances(CLUSTER_LABEL, cluster)
    double.hold_operations = set()

    # the re-run asks again with the same requestId and gets the first operation; let it go on then
    def release_on_second_ask():
        deadline = time.monotonic() + 120
        while double.calls["compute.instances.bulkInsert"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        double.release()
    releaser = threading.Thread(target=release_on_second_ask, daemon=True)
    releaser.start()
    run(double, cluster)
    releaser.join(5)
    asks = double.mutations("compute.instances.bulkInsert")
    assert len(asks) == 2 and asks[0]["query"]["requestId"] == asks[1]["query"]["requestId"]
    assert len([o for o in double.operations.values() if o["op"]["operationType"] == "bulkInsert"]) == 1
    assert ranks_of(double, cluster) == [0, 1, 2]


# 3 ------------------------------------------------------------------------------------------------------------
def test_scale_3_4_2_keeps_ranks_and_ids(double, cluster):
    present(double, cluster, 3)
    ids = dict((i["name"], i["id"]) for i in double.live_instances(CLUSTER_LABEL, cluster))
    result = present(double, cluster, 4)
    assert result["plan"]["create"] == [3] and ranks_of(double, cluster) == [0, 1, 2, 3]
    result = present(double, cluster, 2)
    assert result["plan"]["delete"] == [3, 2] and ranks_of(double, cluster) == [0, 1]
    assert all(ids[i["name"]] == i["id"] for i in double.live_instances(CLUSTER_LABEL, cluster))
    assert present(double, cluster, 2)["changed"] is False


def test_stockout_in_zone_a_lands_in_zone_b_all_or_nothing(double, cluster):
    double.stockout.add("us-central1-a")
    result = present(double, cluster, 4)
    insts = double.live_instances(CLUSTER_LABEL, cluster)
    assert len(insts) == 4 and set(i["zone"].rsplit("/", 1)[-1] for i in insts) == {"us-central1-b"}
    assert result["cluster"]["landed"]["zone"] == "us-central1-b"
    assert [f["zone"] for f in result["cluster"]["failover"]] == ["us-central1-a"]
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in result["cluster"]["failover"][0]["error"]
    assert [b["path"].split("/")[3] for b in double.mutations("compute.instances.bulkInsert")] == [
        "us-central1-a", "us-central1-b"]


def test_stockout_everywhere_fails_saying_what_was_tried_and_leaves_nothing(double, cluster):
    double.stockout.update(["us-central1-a", "us-central1-b"])
    with pytest.raises(CapacityError, match="us-central1-a: .*us-central1-b: "):
        present(double, cluster, 2)
    assert double.labelled(cluster) == {"instances": [], "firewalls": [], "policies": []}


def test_quota_fails_fast_naming_the_metric_and_region(double, cluster):
    double.quota = {"metric": "NVIDIA_H100_GPUS", "limit": 16}
    with pytest.raises(QuotaError) as err:
        present(double, cluster, 4)
    assert "NVIDIA_H100_GPUS" in str(err.value) and "us-central1" in str(err.value)
    assert double.calls["compute.instances.bulkInsert"] == 1  # no other zone: the quota is regional
    assert double.labelled(cluster) == {"instances": [], "firewalls": [], "policies": []}


def test_operation_done_with_an_error_is_a_failure(double, cluster):
    double.fail_operations["bulkInsert"] = {"code": "INTERNAL_ERROR", "message": "Internal error. Please try again."}
    with pytest.raises(CloudError, match="Internal error"):
        present(double, cluster, 2)
    assert double.labelled(cluster)["instances"] == []


def test_thirty_percent_throttled_calls_still_exactly_n_and_no_duplicate(double, cluster):
    double.throttle = 0.3
    prov = provider(double)
    prov.ensure_firewall(cluster, desired_rules([ADMIN]))
    present(double, cluster, 4)
    assert ranks_of(double, cluster) == [0, 1, 2, 3]
    rids = set(b["query"]["requestId"] for b in double.mutations("compute.instances.bulkInsert"))
    assert len(rids) == 1
    assert len([o for o in double.operations.values() if o["op"]["operationType"] == "bulkInsert"]) == 1
    assert double.throttled >= 5
    reconcile.ensure_absent(provider(double), cluster, wait_timeout=60)
    assert double.labelled(cluster) == {"instances": [], "firewalls": [], "policies": []}


def test_an_operation_that_never_ends_fails_at_wait_timeout(double, cluster):
    double.hold_operations = {"bulkInsert"}
    started = time.monotonic()
    with pytest.raises(CloudError, match="timed out waiting for bulkInsert"):
        present(double, cluster, 2, timeout=2)
    assert time.monotonic() - started < 30
    assert double.calls["compute.instances.bulkInsert"] == 1


def test_torn_down_and_made_again_within_the_hour_gets_a_fresh_request(double, cluster):
    present(double, cluster, 2)
    reconcile.ensure_absent(provider(double), cluster, wait_timeout=60)
    present(double, cluster, 2)
    assert ranks_of(double, cluster) == [0, 1]
    rids = [b["query"]["requestId"] for b in double.mutations("compute.instances.bulkInsert")]
    assert len(rids) == 3 and rids[0] == rids[1] != rids[2]


def test_n1_with_attached_gpus_and_spot(double, cluster):
    result = present(double, cluster, 2, instance_type="n1-standard-8", spot=True,
                     accelerators=[{"type": "nvidia-tesla-v100", "count": 1}])
    props = double.mutations("compute.instances.bulkInsert")[0]["body"]["instanceProperties"]
    assert props["guestAccelerators"] == [{"acceleratorType": "nvidia-tesla-v100", "acceleratorCount": 1}]
    assert props["scheduling"]["provisioningModel"] == "SPOT"
    assert "resourcePolicies" not in props  # N1 has no compact placement
    assert result["cluster"]["gpus_per_node"] == 1


# 4 ------------------------------------------------------------------------------------------------------------
def _bad(double, cluster, opts=None, instance_type=TYPE, environ=None):
    options = {"credentials_file": double.sa_file, "endpoint_url": double.url, "placements": [{"zone": "us-central1-a"}]}
    options.update(opts or {})
    options = dict((k, v) for k, v in options.items() if v is not None)
    prov = GcpProvider(options)
    nodes = spec(cluster, instance_type)
    prov.preflight(nodes)
    return reconcile.ensure_present(prov, nodes, 2, wait_timeout=30)


BAD_INPUT = [
    ("unknown-zone", {"placements": [{"zone": "us-central9-z"}]}, TYPE, "zone us-central9-z does not exist"),
    ("type-not-in-zone", {"placements": [{"zone": "us-central1-c"}]}, TYPE,
     "machine type a3-highgpu-8g is not offered in us-central1-c"),
    ("gpu-not-in-zone", {"placements": [{"zone": "us-central1-c"}], "accelerators": [{"type": "nvidia-l4", "count": 1}]},
     "n1-standard-8", "GPU type nvidia-l4 is not offered in us-central1-c"),
    ("missing-network", {"network": "no-such-net"}, TYPE, "network no-such-net does not exist"),
    ("accelerators-on-built-in", {"accelerators": [{"type": "nvidia-h100-80gb", "count": 8}]}, TYPE,
     "machine type a3-highgpu-8g has GPUs built in"),
    ("missing-credentials-file", {"credentials_file": "/nonexistent/sa.json"}, TYPE,
     "the credentials file /nonexistent/sa.json (from credentials_file) does not exist"),
]


@pytest.mark.parametrize("case, opts, instance_type, message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_clear_error_and_nothing_created(double, cluster, case, opts, instance_type, message):
    with pytest.raises(ConfigError) as err:
        _bad(double, cluster, opts, instance_type)
    assert message in str(err.value)
    assert double.resource_count() == 0 and not double.mutations()


def test_credentials_not_a_service_account_say_where_they_were_found(double, cluster, tmp_path, monkeypatch):
    user = tmp_path / "adc.json"
    user.write_text(json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y",
                                "refresh_token": "z"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    with pytest.raises(ConfigError, match=r"from GOOGLE_APPLICATION_CREDENTIALS\) is not a service-account key"):
        _bad(double, cluster, {"credentials_file": None})
    assert double.resource_count() == 0 and not double.log


def test_no_project_anywhere(double, cluster, tmp_path):
    info = json.load(open(double.sa_file))
    del info["project_id"]
    path = tmp_path / "noproject.json"
    path.write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="no Google Cloud project given: project is unset, so are GCP_PROJECT"):
        _bad(double, cluster, {"credentials_file": str(path)})
    assert double.resource_count() == 0 and not double.log


def test_bad_input_through_the_playbook_stops_before_the_firewall(double, cluster):
    proc, _results = run(double, cluster, check=False,
                         gpu_cluster_instance_options={"placements": [{"zone": "us-central9-z"}]})
    assert proc.returncode != 0
    assert "zone us-central9-z does not exist" in proc.stdout
    assert double.resource_count() == 0 and not double.mutations()
