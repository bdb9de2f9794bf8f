"""train.yml on 8 local nodes with Ansible's default forks (5): every rank joins one process group and the job
succeeds; a node stopped mid-run is named, alone and first, within a minute, and the job is stopped everywhere.

In the ``scale`` set (``make test-scale``): provisioning and configuring 8 nodes takes minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import destroy_cluster, podman, run_playbook, unique_name, write_inventory
from test_train import assert_nothing_left, output_of, train, train_background, wait_for_step

pytestmark = [pytest.mark.slow, pytest.mark.scale]

SIZE = 8
DEFAULT_FORKS = 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    name = unique_name("scl")
    tmp = tmp_path_factory.mktemp("scale-cluster")
    try:
        inventory = write_inventory(tmp, name, SIZE)
        run_playbook("playbooks/provision.yml", inventory=inventory, timeout=1800)
        run_playbook("tests/integration/playbooks/pytorch_nodes.yml", inventory=inventory, timeout=3600)
        yield {"name": name, "inventory": inventory, "nodes": ["%s-%d" % (name, r) for r in range(SIZE)]}
    finally:
        destroy_cluster(name)


def test_eight_nodes_with_default_forks(cluster, tmp_path):
    proc, summary = train(cluster, tmp_path, "eight", {"torchrun_script_args": "--steps 40"}, forks=DEFAULT_FORKS)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert summary["status"] == "succeeded" and summary["nnodes"] == SIZE
    assert summary["ranks_reported"] == list(range(SIZE))
    assert [r["exit_code"] for r in summary["nodes"]] == [0] * SIZE
    assert "ranks in %d/%d" % (SIZE, SIZE) in proc.stdout
    assert_nothing_left(cluster)


def test_a_node_stopped_among_eight_is_named_first(cluster, tmp_path):
    nodes = cluster["nodes"]
    victim = nodes[5]
    extra = {"torchrun_job_name": "scale", "torchrun_script_args": "--steps 3000 --min-step-time 0.05"}
    proc = train_background(cluster, tmp_path, "dies8", extra, forks=DEFAULT_FORKS)
    try:
        wait_for_step(nodes[0], "dies8", 20, proc)
        stopped_at = time.time()
        podman("stop", victim)
        rc = proc.wait(timeout=180)
        took = time.time() - stopped_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        podman("start", victim, check=False)
    out = output_of(proc)
    assert rc != 0, out[-4000:]
    assert took <= 60, "the play took %.0fs to fail after the node stopped" % took
    summary = __import__("test_train").summary_of(tmp_path, "dies8")
    assert summary["failed_nodes"][0] == victim, summary["message"]
    assert summary["message"].startswith("%s (node rank 5) failed: " % victim)
    assert_nothing_left(cluster, [n for n in nodes if n != victim])
