"""The instance module, instance_info and the inventory plugin against real local nodes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import KEY, cluster_leftovers, inventory_list, podman, run_playbook, write_inventory

PLAYBOOK = "tests/integration/playbooks/instance.yml"
PUBKEY = open(KEY + ".pub").read().strip()


def instance(tmp_path, *args, **params):
    result_file = tmp_path / "result.json"
    if result_file.exists():
        result_file.unlink()
    params.setdefault("ssh_public_key", PUBKEY)
    params["result_file"] = str(result_file)
    proc = run_playbook(PLAYBOOK, *args, extra_vars=params, env=params.pop("env", None))
    result = json.loads(result_file.read_text())
    result["_output"] = proc.stdout
    return result


def ids_by_rank(result):
    return dict((n["rank"], n["id"]) for n in result["nodes"])


def ssh(node, *command):
    return subprocess.run(
        ["ssh", "-i", KEY, "-p", str(node["ssh_port"]), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
         "%s@%s" % (node["ssh_user"], node["ssh_host"])] + list(command),
        capture_output=True, text=True, timeout=60, check=False)


def test_cluster_lifecycle(tmp_path, cluster_name):
    # create 3
    res = instance(tmp_path, cluster=cluster_name, count=3, labels={"team": "ml"})
    assert res["changed"] and not res.get("failed"), res
    assert [n["rank"] for n in res["nodes"]] == [0, 1, 2]
    assert [n["name"] for n in res["nodes"]] == ["%s-%d" % (cluster_name, r) for r in range(3)]
    assert all(n["state"] == "running" and n["private_address"] for n in res["nodes"])
    assert res["nodes"][0]["labels"] == {"team": "ml"}
    first = ids_by_rank(res)

    # every node over real OpenSSH: the key works, sudo works, it is a systemd host, it trusts the controller's CAs
    for node in res["nodes"]:
        out = ssh(node, "hostname; sudo -n id -u; systemctl is-system-running --wait; "
                        "ls /usr/local/share/ca-certificates/")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split()
        assert lines[0] == node["name"] and lines[1] == "0" and lines[2] in ("running", "degraded")
        for ca in os.listdir("/usr/local/share/ca-certificates"):
            if ca.endswith(".crt"):
                assert ca in lines[3:]
    # nodes reach each other on any port (their cluster network)
    out = ssh(res["nodes"][0], "timeout 3 bash -c 'echo > /dev/tcp/%s/22' && echo open" %
              res["nodes"][2]["private_address"])
    assert out.stdout.strip() == "open"

    # the inventory plugin finds them; both connection plugins reach every node
    inv = write_inventory(tmp_path, cluster_name, size=3)
    listed = inventory_list(inv)
    assert listed["gpu_nodes"]["hosts"] == ["%s-%d" % (cluster_name, r) for r in range(3)]
    hv = listed["_meta"]["hostvars"]["%s-2" % cluster_name]
    assert hv["gpu_cluster_rank"] == 2 and hv["ansible_host"] == res["nodes"][2]["ssh_host"]
    for connection in ("ssh", "paramiko"):
        # paramiko (deprecated) reads only ~/.ssh/known_hosts, never the cluster's own file: host key checking is
        # the ssh connection's (accept-new into the cluster's file, tests/integration/test_host_keys.py)
        extra = ("-e", "ansible_host_key_checking=false") if connection == "paramiko" else ()
        proc = run_playbook("playbooks/nodes_answer.yml", "-c", connection, *extra, inventory=inv)
        for rank in range(3):
            assert "rank %d: %s-%d" % (rank, cluster_name, rank) in proc.stdout
        assert "answers over %s" % connection in proc.stdout

    # same arguments again: nothing changes
    res = instance(tmp_path, cluster=cluster_name, count=3, labels={"team": "ml"})
    assert res["changed"] is False and ids_by_rank(res) == first

    # check mode + diff: the plan, and nothing touched
    res = instance(tmp_path, "--check", "--diff", cluster=cluster_name, count=5)
    assert res["changed"] and res["plan"]["create"] == [3, 4]
    assert "to create" in res["_output"]
    assert len(podman("ps", "-a", "--filter", "label=aiinfra-gpu-cluster=%s" % cluster_name, "-q").stdout.split()) == 3

    # scale 3 -> 4 -> 2: ranks never move
    res = instance(tmp_path, cluster=cluster_name, count=4)
    assert res["plan"]["create"] == [3] and dict(list(ids_by_rank(res).items())[:3]) == first
    res = instance(tmp_path, cluster=cluster_name, count=2)
    assert res["plan"]["delete"] == [3, 2] and ids_by_rank(res) == {0: first[0], 1: first[1]}

    info = instance(tmp_path, cluster=cluster_name, info=True)
    assert ids_by_rank(info) == {0: first[0], 1: first[1]} and info["changed"] is False
    assert info["resources"] == ["network/aiinfra-%s" % cluster_name]

    # teardown: zero containers and networks carrying the label
    res = instance(tmp_path, cluster=cluster_name, state="absent")
    assert res["changed"]
    assert cluster_leftovers(cluster_name) == []
    res = instance(tmp_path, cluster=cluster_name, state="absent")
    assert res["changed"] is False


BAD_INPUT = [
    (dict(count=-1), "count must be 0 or more"),
    (dict(count="three"), "unable to convert to int"),
    (dict(cloud="mars"), "value of cloud must be one of"),
    (dict(cluster="Bad_Name"), "is not accepted by every cloud"),
    (dict(cluster="a" * 41), "is not accepted by every cloud"),
    (dict(ssh_public_key="not a key"), "ssh_public_key is not an OpenSSH public key"),
    (dict(ssh_public_key="-----BEGIN OPENSSH PRIVATE KEY-----"), "ssh_public_key holds a private key"),
    (dict(ssh_public_key=None), "ssh_public_key is required to create nodes"),
    (dict(ssh_user="root"), "is not a valid login name"),
    (dict(image="localhost/does-not-exist:1"), "local image 'localhost/does-not-exist:1' does not exist"),
    (dict(wait_timeout=0), "wait_timeout must be at least 1 second"),
    (dict(owner=" alice"), "owner ' alice' is not accepted"),
]


@pytest.mark.parametrize("params,message", BAD_INPUT, ids=[case[1] for case in BAD_INPUT])
def test_bad_input_fails_clearly_and_creates_nothing(tmp_path, cluster_name, params, message):
    params = dict(params)
    name = params.pop("cluster", cluster_name)
    if "ssh_public_key" in params and params["ssh_public_key"] is None:
        params.pop("ssh_public_key")
        params["ssh_public_key"] = ""
    res = instance(tmp_path, cluster=name, count=params.pop("count", 2), **params)
    assert res.get("failed") is True
    assert message in res["msg"]
    assert cluster_leftovers(cluster_name) == []
    if name != cluster_name and len(name) <= 60:
        assert cluster_leftovers(name) == []


def test_podman_missing_says_how_to_install(tmp_path, cluster_name):
    # shadow every PATH entry that holds podman with a copy of its links minus podman
    entries = []
    for i, entry in enumerate(os.environ["PATH"].split(":")):
        if os.path.exists(os.path.join(entry, "podman")):
            shadow = tmp_path / ("bin%d" % i)
            shadow.mkdir()
            for name in os.listdir(entry):
                if name != "podman":
                    os.symlink(os.path.join(entry, name), str(shadow / name))
            entry = str(shadow)
        entries.append(entry)
    path = ":".join(entries)
    res = instance(tmp_path, cluster=cluster_name, count=1, env={"PATH": path})
    assert res.get("failed") is True
    assert "podman is not installed" in res["msg"] and "apt-get install podman" in res["msg"]
    assert cluster_leftovers(cluster_name) == []


@pytest.fixture
def image_without_sshd(cluster_name):
    """The node image with sshd masked: nodes boot but never answer on SSH."""
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import default_image
    tag = "localhost/aiinfra-test-nossh:%s" % cluster_name
    box = "nossh-%s" % cluster_name
    podman("run", "--name", box, default_image(), "/bin/sh", "-c",
           "ln -sf /dev/null /etc/systemd/system/ssh.service && ln -sf /dev/null /etc/systemd/system/sshd.service")
    podman("commit", "-q", box, tag)
    podman("rm", "-f", box)
    yield tag
    podman("rmi", "-f", tag, check=False)


def test_wait_timeout_fails_and_leaves_nothing(tmp_path, cluster_name, image_without_sshd):
    res = instance(tmp_path, cluster=cluster_name, count=2, image=image_without_sshd, wait_timeout=5)
    assert res.get("failed") is True
    assert "timed out after 5s waiting for nodes to answer on SSH" in res["msg"]
    assert cluster_name + "-0" in res["msg"]                       # it says which nodes were pending
    assert cluster_leftovers(cluster_name) == []
