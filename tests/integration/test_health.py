"""The health gate on 3 real local nodes (playbooks/health.yml, as train.yml runs it before the job).

One node's link is slowed on the controller - ``tc qdisc ... tbf`` on the host side of its veth (the index in the
container's /sys/class/net/eth0/iflink; see TESTING.md), which slows the traffic *to* that node. The nodes measure each
other in rounds of pairs (gloo: the nodes are CPU nodes with the pytorch role's virtualenv): both pairs of the slowed
node are slow, the other two nodes still have their fast pair, so the slowed node - and only it - is named, with its
figure. With torchrun_max_recoveries 1, train.yml replaces it before the job starts (the recovery path) and the job
runs; summary.json keeps the gate's figures. make test-health runs this file (marker ``health``; not in make test).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess

import pytest

from conftest import podman, run_playbook

pytestmark = pytest.mark.health

# 20 Mbit/s into the node: ~0.0025 GB/s, against ~0.1-1 GB/s between the containers on the bridge
RATE = "20mbit"


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """3 local nodes with PyTorch (this pytest process's shared cluster; tests/conftest.py SharedCluster)."""
    return shared_cluster.take(3)


def host_veth(node):
    """The host side of the node's eth0: the link whose index is the container's eth0 iflink."""
    index = podman("exec", node, "cat", "/sys/class/net/eth0/iflink").stdout.strip()
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        number, name = line.split(":", 2)[:2]
        if number.strip() == index:
            return name.strip().split("@")[0]
    raise AssertionError("no host link with index %s for %s" % (index, node))


@contextlib.contextmanager
def slow_link(node, rate=RATE):
    veth = host_veth(node)
    subprocess.run(["tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", rate, "burst", "32kbit", "latency",
                    "400ms"], check=True)
    try:
        yield veth
    finally:
        # gone already when the node's container was replaced (its veth went with it)
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], capture_output=True, check=False)


def container_id(node):
    return podman("inspect", "-f", "{{.Id}}", node).stdout.strip()


def report_lines(out):
    """The health report's lines per node, as the debug task prints them (one list item, maybe wrapped)."""
    text = " ".join(out.split())
    return dict((m.group(1), m.group(2)) for m in re.finditer(r"'\s*(\S+-\d+) (PASSED|FAILED) ", text))


def test_the_slowed_node_is_named_with_its_figure_and_the_job_does_not_start(cluster, tmp_path):
    nodes = cluster["nodes"]
    slow = nodes[1]
    with slow_link(slow):
        proc = run_playbook("playbooks/train.yml", inventory=cluster["inventory"], check=False, timeout=900,
                            extra_vars={"gpu_cluster_health": "true", "gpu_cluster_health_iters": "3", "torchrun_max_recoveries": "0",
                                        "torchrun_runs_dir": str(tmp_path / "runs")})
    out = proc.stdout
    assert proc.returncode != 0, out[-5000:]
    # the gate stopped every node, not only the one its failing task ran on: the job did not start anywhere
    assert "PLAY [Health gate" in out and "PLAY [Train]" not in out, out[-5000:]
    assert not (tmp_path / "runs").exists()
    text = " ".join(out.split())
    print("\n".join(line for line in out.splitlines() if "health" in line or "GB/s" in line)[-4000:])
    # the report: every node with its figures, the slowed one failed, through gloo pairs
    assert re.search(r"health of %s: 3 node\(s\), FAILED: %s; 3 pair\(s\) \(gloo\)" % (cluster["name"], slow), text)
    assert report_lines(out) == {nodes[0]: "PASSED", nodes[1]: "FAILED", nodes[2]: "PASSED"}, text[-3000:]
    # CPU nodes: the GPU checks are not applicable, not passed
    assert "not applicable: driver, gpu count, gpu model, ecc, dcgm diag, nvlink all-reduce" in text
    # the play fails naming it, with its best pair's figure and the cluster's median
    named = re.search(r"The health gate failed %s \(between nodes: every pair slow - best ([\d.e-]+) GB/s, under 50%% "
                      r"of the cluster's median ([\d.e-]+) GB/s; pairs: (\S+) ([\d.e-]+), (\S+) ([\d.e-]+)\)"
                      % re.escape(slow), text)
    assert named, text[-3000:]
    best, median = float(named.group(1)), float(named.group(2))
    assert best < 0.01 < median, (best, median)       # 20 Mbit/s is 0.0025 GB/s
    assert sorted([named.group(3), named.group(5)]) == sorted([nodes[0], nodes[2]])
    assert "Replace it (playbooks/recover.yml -e gpu_cluster_replace=%s)" % slow in text


def test_with_a_recovery_the_slowed_node_is_replaced_before_the_job_and_the_job_runs(cluster, tmp_path):
    nodes = cluster["nodes"]
    slow = nodes[2]
    ids = dict((n, container_id(n)) for n in nodes)
    runs = tmp_path / "runs"
    with slow_link(slow):
        # every value a string, as -e and AWX surveys give them; these nodes were prepared with the pytorch role only
        proc = run_playbook("playbooks/train.yml", inventory=cluster["inventory"], check=False, timeout=1500,
                            extra_vars={"torchrun_max_recoveries": "1", "gpu_cluster_recover_roles": "preflight pytorch",
                                        "gpu_cluster_health": "true", "gpu_cluster_health_iters": "3", "torchrun_runs_dir": str(runs),
                                        "torchrun_run_id": "hl", "torchrun_job_name": "hl",
                                        "gpu_cluster_monitoring": "false", "torchrun_script_args": "--steps 20"})
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:]
    text = " ".join(out.split())
    assert "The health gate failed %s: replacing it before the job starts" % slow in text
    # only it was replaced (a new container under its name); the others kept theirs
    assert container_id(slow) not in ("", ids[slow])
    assert [container_id(n) for n in nodes[:2]] == [ids[n] for n in nodes[:2]]
    # checked again after the replacement: passed, then the job ran
    assert len(re.findall(r"health of %s: 3 node\(s\), " % cluster["name"], text)) == 2
    assert re.search(r"health of %s: 3 node\(s\), passed; 3 pair\(s\) \(gloo\)" % cluster["name"], text)
    summary = json.loads((runs / "hl" / "summary.json").read_text())
    assert summary["status"] == "succeeded", summary.get("message")
    health = summary["health"]
    assert health["passed"] and health["replaced"] == [slow]
    before = health["before_replacement"]
    assert before["failed"] == [slow] and before["nodes"][slow]["status"] == "failed"
    assert before["nodes"][slow]["best_pair_gbs"] < 0.01 < before["median_pair_gbs"]
    assert set(health["nodes"]) == set(nodes) and all(n["best_pair_gbs"] > 0.01 for n in health["nodes"].values())
    assert "replaced before the job: %s" % slow in text
    print("health before the replacement: %s" % json.dumps(before["nodes"]))
    print("health after: %s" % json.dumps(dict((h, n["pairs"]) for h, n in health["nodes"].items())))
