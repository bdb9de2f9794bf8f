"""The aws cloud against a real EC2 API server: moto (server mode, loopback) behind tests/integration/ec2_proxy.py.

Every scenario runs the real playbooks (playbooks/provision.yml, teardown.yml) with inventories/aws through
ansible-playbook, so the modules are packaged by AnsiballZ and talk HTTP through boto3, and then checks the
end state by listing what exists with boto3 - instances, security groups and key pairs from moto itself,
placement groups from the proxy (moto has none) - never by trusting the module's own output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import boto3
import pytest

from conftest import KEY, ROOT, VENV_BIN, ansible_env, plain, run_playbook, task_results, unique_name
from cloud_servers import moto, proxy  # noqa: F401  pylint: disable=unused-import

CLUSTER_TAG = "aiinfra-gpu-cluster"
TYPE = "p4d.24xlarge"
IMAGE = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"
ADMIN = "198.51.100.0/24"


@pytest.fixture
def cluster():
    return unique_name("aws")


def client(url):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def aws_env(proxy, cluster, credentials=True, tmp="/nonexistent"):
    env = {
        # never a real endpoint: the safety net if an option were missed
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.path.join(tmp, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GPU_CLUSTER_NAME": cluster,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


def cluster_vars(proxy, cluster, **extra):
    values = {
        "gpu_cluster_name": cluster,
        "gpu_cluster_size": 8,
        "gpu_cluster_instance_type": TYPE,
        "gpu_cluster_image": IMAGE,
        "gpu_cluster_admin_cidrs": [ADMIN],
        "gpu_cluster_ssh_private_key_file": KEY,
        "gpu_cluster_wait_timeout": 120,
        "gpu_cluster_cloud_options": {"region": "us-east-1", "endpoint_url": proxy.url},
        "gpu_cluster_instance_options": {
            "placements": [{"availability_zone": "us-east-1a"}, {"availability_zone": "us-east-1b"}],
            "root_volume_size": 100,
        },
    }
    values.update(extra)
    return values


def playbook_cmd(playbook, extra_vars, *args):
    return [os.path.join(VENV_BIN, "ansible-playbook"), playbook, "-i", "inventories/aws", "-e",
            json.dumps(extra_vars)] + list(args)


def run(proxy, cluster, playbook="playbooks/provision.yml", args=(), env=None, check=True, **extra):
    """Run a playbook against the proxy (``env``: instead of :func:`aws_env`); return (process, {task: result})."""
    proc = run_playbook(playbook, *args, extra_vars=cluster_vars(proxy, cluster, **extra), inventory="inventories/aws",
                        env=env or aws_env(proxy, cluster), timeout=300, check=check)
    return proc, task_results(proc.stdout)


def end_state(proxy, cluster):
    """What exists with the cluster's tag, listed with boto3 (moto directly; placement groups from the proxy)."""
    ec2 = client(proxy.moto_url)
    tag = [{"Name": "tag:%s" % CLUSTER_TAG, "Values": [cluster]}]
    reservations = ec2.describe_instances(Filters=tag)["Reservations"]
    instances = [dict(i, ReservationId=r["ReservationId"]) for r in reservations for i in r["Instances"]]
    live = [i for i in instances if i["State"]["Name"] not in ("shutting-down", "terminated")]
    calls_before = dict(proxy.calls)
    groups = client(proxy.url).describe_placement_groups(Filters=tag)["PlacementGroups"]
    proxy.calls.clear()
    proxy.calls.update(calls_before)
    return {
        "instances": instances,
        "live": live,
        "reservations": sorted(set(i["ReservationId"] for i in live)),
        "security_groups": ec2.describe_security_groups(Filters=tag)["SecurityGroups"],
        "key_pairs": ec2.describe_key_pairs(Filters=tag)["KeyPairs"],
        "volumes": ec2.describe_volumes(Filters=tag)["Volumes"],
        "placement_groups": groups,
    }


def tags_of(instance):
    return dict((t["Key"], t["Value"]) for t in instance.get("Tags", []))


def assert_nothing(state):
    leftovers = dict((k, v) for k, v in state.items() if k not in ("live",) and v)
    assert not leftovers, "left behind: %s" % json.dumps(leftovers, default=str)[:2000]


# 1 ---------------------------------------------------------------------------
def test_cluster_in_one_call_with_firewall_and_placement_group_then_rerun_changes_nothing(proxy, cluster, tmp_path):
    _proc, results = run(proxy, cluster)
    state = end_state(proxy, cluster)

    assert len(state["live"]) == 8
    assert sorted(int(tags_of(i)["aiinfra-gpu-rank"]) for i in state["live"]) == list(range(8))
    assert len(state["reservations"]) == 1 and proxy.calls["RunInstances"] == 1
    assert set(i["Placement"]["AvailabilityZone"] for i in state["live"]) == {"us-east-1a"}
    assert set(i["InstanceType"] for i in state["live"]) == {TYPE}

    # the firewall: SSH only from the admin network, everything between members of the group
    assert len(state["security_groups"]) == 1
    group = state["security_groups"][0]
    ssh = [p for p in group["IpPermissions"] if p["IpProtocol"] == "tcp"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in ssh] == [(22, [ADMIN])]
    everything = [p for p in group["IpPermissions"] if p["IpProtocol"] == "-1"]
    assert [[g["GroupId"] for g in p["UserIdGroupPairs"]] for p in everything] == [[group["GroupId"]]]
    assert not [p for p in everything if p["IpRanges"]]

    # placement group, imported key pair
    assert [(g["GroupName"], g["Strategy"]) for g in state["placement_groups"]] == [("aiinfra-%s" % cluster, "cluster")]
    assert len(state["key_pairs"]) == 1
    assert set(i["KeyName"] for i in state["live"]) == {state["key_pairs"][0]["KeyName"]}

    # what the single RunInstances asked EC2 for
    launch = proxy.requests[0]
    assert launch["MinCount"] == launch["MaxCount"] == "8"
    assert launch["Placement.GroupName"] == "aiinfra-%s" % cluster
    assert launch["MetadataOptions.HttpTokens"] == "required"
    efa = [(launch["NetworkInterface.%d.NetworkCardIndex" % n], launch["NetworkInterface.%d.InterfaceType" % n])
           for n in range(1, 5)]
    assert efa == [("0", "efa"), ("1", "efa-only"), ("2", "efa-only"), ("3", "efa-only")]
    assert "NetworkInterface.5.InterfaceType" not in launch
    # every interface in the cluster's group (moto reports interfaces in the VPC's default group: asked, not shown)
    assert [launch["NetworkInterface.%d.SecurityGroupId.1" % n] for n in range(1, 5)] == [group["GroupId"]] * 4
    tagged = set(v for k, v in launch.items() if k.endswith("ResourceType"))
    assert {"instance", "volume", "network-interface"} <= tagged
    assert launch["BlockDeviceMapping.1.Ebs.DeleteOnTermination"] == "true"
    assert launch["BlockDeviceMapping.1.Ebs.VolumeSize"] == "100"
    assert launch["ClientToken"].startswith("aiinfra-")
    assert results["Create the nodes"]["cluster"]["landed"]["availability_zone"] == "us-east-1a"
    assert [n["rank"] for n in results["Create the nodes"]["nodes"]] == list(range(8))

    # check mode with --diff: the plan for 10, nothing created
    _proc, results = run(proxy, cluster, args=("--check", "--diff"), gpu_cluster_size=10)
    create = results["Create the nodes"]
    assert create["changed"] is True and create["plan"]["create"] == [8, 9]
    assert "to create" in json.dumps(create["diff"])
    assert len(end_state(proxy, cluster)["live"]) == 8 and proxy.calls["RunInstances"] == 1

    # unchanged re-run: nothing changes, a handful of read-only calls
    proxy.calls.clear()
    _proc, results = run(proxy, cluster)
    assert results["Open SSH from the admin networks and all traffic inside the cluster"]["changed"] is False
    assert results["Create the nodes"]["changed"] is False
    assert len(end_state(proxy, cluster)["live"]) == 8
    assert all(action.startswith("Describe") for action in proxy.calls), dict(proxy.calls)
    # inventory plugin 1 + preflight check 1 + firewall 1 + instance 1
    assert proxy.total_calls() <= 4, dict(proxy.calls)

    # the inventory plugin lists the nodes in rank order
    env = ansible_env(aws_env(proxy, cluster))
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    out = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", "inventories/aws/gpu_nodes.gpu_cluster.yml",
                          "--list"], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120)
    inventory = json.loads(out.stdout)
    assert inventory["gpu_nodes"]["hosts"] == ["%s-%d" % (cluster, r) for r in range(8)]
    hostvars = inventory["_meta"]["hostvars"]
    assert [plain(hostvars["%s-%d" % (cluster, r)]["gpu_cluster_rank"]) for r in range(8)] == list(range(8))
    assert set(plain(h["gpu_cluster_zone"]) for h in hostvars.values()) == {"us-east-1a"}
    assert set(plain(h["ansible_user"]) for h in hostvars.values()) == {"gpuadmin"}
    assert all(plain(h["ansible_host"]).startswith("54.") for h in hostvars.values())


# 2 ---------------------------------------------------------------------------
def test_throttling_and_5xx_on_30_percent_of_calls_still_exactly_eight(proxy, cluster):
    proxy.throttle_rate = 0.3
    run(proxy, cluster)
    state = end_state(proxy, cluster)
    assert len(state["live"]) == 8
    assert len(state["reservations"]) == 1, "duplicate launches: %s" % state["reservations"]
    assert sorted(int(tags_of(i)["aiinfra-gpu-rank"]) for i in state["live"]) == list(range(8))
    assert len(state["security_groups"]) == 1 and len(state["placement_groups"]) == 1 and len(state["key_pairs"]) == 1
    assert sum(proxy.faults.values()) >= 5, dict(proxy.faults)

    # and teardown under the same weather leaves nothing
    run(proxy, cluster, playbook="playbooks/teardown.yml")
    assert_nothing(dict(end_state(proxy, cluster), instances=[]))
    assert not end_state(proxy, cluster)["live"]


# 3 ---------------------------------------------------------------------------
def test_capacity_error_in_first_zone_lands_in_second_and_says_so(proxy, cluster):
    proxy.no_capacity_azs = {"us-east-1a"}
    _proc, results = run(proxy, cluster)
    state = end_state(proxy, cluster)
    assert len(state["live"]) == 8 and len(state["reservations"]) == 1
    assert set(i["Placement"]["AvailabilityZone"] for i in state["instances"]) == {"us-east-1b"}
    assert proxy.calls["RunInstances"] == 2
    where = results["Create the nodes"]["cluster"]
    assert where["landed"]["availability_zone"] == "us-east-1b"
    assert [f["availability_zone"] for f in where["failover"]] == ["us-east-1a"]
    assert "InsufficientInstanceCapacity" in where["failover"][0]["error"]


# 4 ---------------------------------------------------------------------------
def test_controller_killed_after_run_instances_was_sent_rerun_makes_no_duplicates(proxy, cluster):
    proxy.hang_run_instances = True
    proxy.hide_new = True  # the re-run's DescribeInstances does not see the launched nodes yet
    cmd = playbook_cmd("playbooks/provision.yml", cluster_vars(proxy, cluster))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(aws_env(proxy, cluster)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proxy.run_instances_sent.wait(180), "RunInstances never arrived"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    proxy.hang_run_instances = False
    proxy.hide_new = False
    proxy.release.set()
    launched = end_state(proxy, cluster)["instances"]
    assert len(launched) == 8, "the killed run's RunInstances should have reached EC2"

    run(proxy, cluster)
    state = end_state(proxy, cluster)
    assert len(state["instances"]) == 8 and len(state["live"]) == 8
    assert state["reservations"] == sorted(set(i["ReservationId"] for i in launched))
    tokens = [r["ClientToken"] for r in proxy.requests]
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert len(state["security_groups"]) == 1 and len(state["placement_groups"]) == 1 and len(state["key_pairs"]) == 1


# 5 ---------------------------------------------------------------------------
def test_teardown_leaves_nothing_with_the_cluster_tag(proxy, cluster):
    run(proxy, cluster, gpu_cluster_size=3)
    before = end_state(proxy, cluster)
    assert len(before["live"]) == 3 and before["security_groups"] and before["placement_groups"] and before["key_pairs"]

    _proc, results = run(proxy, cluster, playbook="playbooks/teardown.yml")
    state = end_state(proxy, cluster)
    assert not state["live"]
    assert set(i["State"]["Name"] for i in state["instances"]) == {"terminated"}  # waited for, not shutting down
    assert_nothing(dict(state, instances=[]))
    deleted = " ".join(results["Remove the nodes and the cluster's resources"]["deleted_resources"])
    assert "security-group/" in deleted and "placement-group/" in deleted and "key-pair/" in deleted

    _proc, results = run(proxy, cluster, playbook="playbooks/teardown.yml")
    assert results["Remove the nodes and the cluster's resources"]["changed"] is False
    assert results["Remove the cluster's firewall (already gone with the nodes, unless they were removed by hand)"][
        "changed"] is False


# 5b --------------------------------------------------------------------------
def test_terminated_instance_replaced_alone_the_others_keep_their_ids(proxy, cluster, tmp_path):
    run(proxy, cluster, gpu_cluster_size=3)
    before = end_state(proxy, cluster)
    ids = dict((int(tags_of(i)["aiinfra-gpu-rank"]), i["InstanceId"]) for i in before["live"])
    group = before["security_groups"][0]["GroupId"]
    client(proxy.moto_url).terminate_instances(InstanceIds=[ids[1]])   # rank 1 is lost

    # the instance module: replace rank 1 (its node is gone: it is simply made again), nothing else
    proxy.calls.clear()
    del proxy.requests[:]
    out = tmp_path / "replace.json"
    run_playbook("tests/integration/playbooks/instance.yml", env=aws_env(proxy, cluster), extra_vars={
        "cloud": "aws", "cluster": cluster, "count": 3, "replace": [1], "instance_type": TYPE, "image": IMAGE,
        "ssh_public_key": open(KEY + ".pub").read(), "region": "us-east-1", "endpoint_url": proxy.url,
        "result_file": str(out)})
    result = json.loads(out.read_text())
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["plan"]["create"] == [1] and result["plan"]["keep"] == [0, 2]
    state = end_state(proxy, cluster)
    now = dict((int(tags_of(i)["aiinfra-gpu-rank"]), i) for i in state["live"])
    assert sorted(now) == [0, 1, 2]
    assert now[0]["InstanceId"] == ids[0] and now[2]["InstanceId"] == ids[2]      # kept, untouched
    assert now[1]["InstanceId"] != ids[1] and tags_of(now[1])["Name"] == "%s-1" % cluster
    # one launch of rank 1 alone, in the cluster's security group, placement group and zone
    assert proxy.calls["RunInstances"] == 1 and "TerminateInstances" not in proxy.calls
    launch = proxy.requests[-1]
    assert launch["MinCount"] == launch["MaxCount"] == "1"
    assert launch["NetworkInterface.1.SecurityGroupId.1"] == group
    assert launch["Placement.GroupName"] == "aiinfra-%s" % cluster
    assert now[1]["Placement"]["AvailabilityZone"] == now[0]["Placement"]["AvailabilityZone"]

    # recover.yml by hand (rank 2 named; the moto nodes cannot be reached over SSH, so no role configures it):
    # its instance is terminated and made again under the same rank and inventory name, the others stay
    proxy.calls.clear()
    proc, _results = run(proxy, cluster, playbook="tests/integration/playbooks/provision_recover.yml",
                         gpu_cluster_size=3, gpu_cluster_replace="2", gpu_cluster_recover_roles=[])
    after = dict((int(tags_of(i)["aiinfra-gpu-rank"]), i["InstanceId"]) for i in end_state(proxy, cluster)["live"])
    assert after[0] == ids[0] and after[1] == now[1]["InstanceId"] and after[2] not in (ids[2],)
    assert proxy.calls["RunInstances"] == 1 and proxy.calls["TerminateInstances"] == 1
    assert proxy.requests[-1]["NetworkInterface.1.SecurityGroupId.1"] == group
    doc = json.loads(proc.stdout[proc.stdout.find("{\n"):])
    tasks = [t for play in doc["plays"] for t in play["tasks"]]
    replaced = next(t for t in tasks if "Delete and create again rank(s) 2" in t["task"]["name"])
    result = next(iter(replaced["hosts"].values()))
    assert result["changed"] and result["plan"]["replace"] == [2] and result["plan"]["keep"] == [0, 1]
    assert "Replacing %s-2 (rank 2)" % cluster in proc.stdout

    # --check names what would be replaced and changes nothing
    proxy.calls.clear()
    run(proxy, cluster, playbook="tests/integration/playbooks/provision_recover.yml", args=("--check",),
        gpu_cluster_size=3, gpu_cluster_replace=[0], gpu_cluster_recover_roles=[])
    assert "RunInstances" not in proxy.calls and "TerminateInstances" not in proxy.calls
    assert dict((int(tags_of(i)["aiinfra-gpu-rank"]), i["InstanceId"])
                for i in end_state(proxy, cluster)["live"]) == after


# 6 ---------------------------------------------------------------------------
BAD_INPUT = [
    ("unknown-instance-type", {"gpu_cluster_instance_type": "p9.fake"}, True, "instance type p9.fake does not exist"),
    ("bad-cidr", {"gpu_cluster_admin_cidrs": ["10.0.0.300/24"]}, True, "is not a CIDR"),
    ("cidr-host-bits", {"gpu_cluster_admin_cidrs": ["10.1.2.3/16"]}, True, "Did you mean 10.1.0.0/16"),
    ("world-open-ssh", {"gpu_cluster_admin_cidrs": ["0.0.0.0/0"]}, True, "opens SSH to the whole internet"),
    # the union is judged: two halves are the whole internet too
    ("world-open-union", {"gpu_cluster_admin_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}, True,
     "opens SSH to the whole internet (0.0.0.0/0)"),
    ("missing-credentials", {}, False, "AWS credentials are missing"),
    ("nonexistent-ami", {"gpu_cluster_image": "ami-0123456789abcdef0"}, True, "AMI ami-0123456789abcdef0 does not exist"),
    ("no-ami-matches", {"gpu_cluster_image": "no-such-image-*"}, True, "no AMI named like"),
    ("nonexistent-subnet", {"gpu_cluster_instance_options": {"placements": [{"subnet_id": "subnet-0123456789abcdef0"}]}},
     True, "subnet subnet-0123456789abcdef0 does not exist"),
    ("missing-cluster-name", {"gpu_cluster_name": ""}, True, "no cluster name is set"),
    ("bad-owner", {"gpu_cluster_owner": " alice"}, True, "owner ' alice' is not accepted"),
]


@pytest.mark.parametrize("case, extra, credentials, message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_clear_error_and_nothing_created(proxy, cluster, tmp_path, case, extra, credentials, message):
    env = aws_env(proxy, cluster, credentials=credentials, tmp=str(tmp_path))
    proc, _results = run(proxy, cluster, env=env, check=False, **extra)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    assert_nothing(end_state(proxy, cluster))
    assert not [a for a in proxy.calls if not a.startswith("Describe")], dict(proxy.calls)


def test_quota_error_fails_fast_naming_the_quota_and_leaves_nothing(proxy, cluster):
    proxy.vcpu_quota = 96 * 4
    proc, _results = run(proxy, cluster, check=False)
    assert proc.returncode != 0
    assert "Running On-Demand P instances" in proc.stdout and "L-417A185B" in proc.stdout
    assert proxy.calls["RunInstances"] == 1  # no failover to the second placement: the quota is regional
    assert_nothing(end_state(proxy, cluster))


def test_wait_timeout_fails_and_removes_what_it_launched(proxy, cluster):
    proxy.stuck_pending = True
    proc, _results = run(proxy, cluster, check=False, gpu_cluster_size=2, gpu_cluster_wait_timeout=3)
    assert proc.returncode != 0
    assert "timed out after 3s waiting for 2 node(s)" in proc.stdout
    state = end_state(proxy, cluster)
    assert len(state["instances"]) == 2 and not state["live"]
    assert_nothing(dict(state, instances=[]))
