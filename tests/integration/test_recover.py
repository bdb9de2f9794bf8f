"""Recovery from a lost node on real local nodes: train.yml with torchrun_max_recoveries.

One cluster (2 nodes, provisioned, then the real pytorch role: the worker's shared cluster) and a moto S3 server on its network
for the checkpoints (torchrun_checkpoint_uri). A node's container is stopped mid-run: with one recovery allowed,
only that node is replaced (a new container under the same name, configured by the recovery's roles alone) and the
job runs again from the latest checkpoint to the end - the node lost is rank 0, the one that held the rendezvous
and wrote the checkpoints, so they come back from the object store; with none, the play fails naming the node, as
it always did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, VENV_BIN, ansible_env, events, podman
from s3_server import S3Server

TRAIN = "playbooks/train.yml"
BUCKET = "rcv"


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """2 local nodes with PyTorch from the pytorch role (this worker's shared cluster, tests/conftest.py
    SharedCluster: the node the first test replaces is checked and configured again before the next module takes
    it), and a moto S3 server on its network; the server is stopped at the end, pass or fail."""
    state = shared_cluster.take(2)
    s3 = S3Server(state["name"]).start()
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        yield dict(state, s3=s3)
    finally:
        s3.stop()


def container_id(node):
    return podman("inspect", "-f", "{{.Id}}", node).stdout.strip()


def start_training(cluster, tmp_path, run_id, extra):
    params = {"torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_id": run_id, "torchrun_job_name": run_id,
              "torchrun_progress_interval": 5, "gpu_cluster_monitoring": False}
    params.update(extra)
    out = tmp_path / ("%s.out" % run_id)
    proc = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", cluster["inventory"], "-e",
                             json.dumps(params)], cwd=ROOT, env=ansible_env(), stdout=open(out, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    proc.out = out
    return proc


def stop_node_when(proc, node, reached, what, timeout=300):
    """Stop ``node``'s container once ``reached()`` is true."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if reached():
            podman("stop", node)
            return time.time()
        if proc.poll() is not None:
            raise AssertionError("train.yml ended before %s:\n%s" % (what, proc.out.read_text()[-4000:]))
        time.sleep(1)
    raise AssertionError("never reached: %s" % what)


def logged_step(log_of, step):
    return lambda: max([e["step"] for e in events(log_of(), "step")] or [0]) >= step


def finish(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def summary_of(tmp_path, run_id):
    path = tmp_path / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def rank0_log(cluster, run_id):
    return lambda: podman("exec", cluster["nodes"][0], "sh", "-c", "cat /var/lib/aiinfra/torchrun/runs/%s/torchrun.log "
                          "2>/dev/null" % run_id, check=False).stdout


def test_lost_rank0_is_replaced_alone_and_the_job_resumes_from_the_object_store(cluster, tmp_path):
    nodes = cluster["nodes"]
    ids = dict((n, container_id(n)) for n in nodes)
    s3 = cluster["s3"]

    def uploaded_step_40():
        listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="rec/").get("Contents") or []
        return any(item["Key"].endswith("ckpt-%08d.pt" % step) for item in listed for step in range(40, 1000, 20))

    # every value as a string, as -e and AWX surveys give them; these nodes were prepared with the pytorch role only
    proc = start_training(cluster, tmp_path, "rec", {
        "torchrun_max_recoveries": "1", "gpu_cluster_recover_roles": "preflight pytorch",
        "torchrun_checkpoint_uri": "s3://%s/rec" % BUCKET, "gpu_cluster_storage_options": s3.options(),
        "torchrun_checkpoint_interval": 1, "torchrun_checkpoint_stable_seconds": 1,
        "torchrun_script_args": "--steps 240 --min-step-time 0.05 --checkpoint-every 20"})
    # rank 0: the rendezvous host and the only writer of checkpoints; they survive in the object store only
    stop_node_when(proc, nodes[0], uploaded_step_40, "a checkpoint of step 40 or later in the object store")
    rc = finish(proc, 600)
    out = proc.out.read_text()
    assert rc == 0, out[-6000:]

    # the lost node was named, replaced (a new container under its name) and alone configured; rank 0 kept its node
    text = " ".join(out.split())
    assert "run rec lost %s (rank 0: stopped in the cloud). Replacing it" % nodes[0] in text
    assert container_id(nodes[1]) == ids[nodes[1]]
    assert container_id(nodes[0]) not in ("", ids[nodes[0]])
    # from the configure task to the next of replace_nodes.yml (the new node's lifetime timer, when it has one)
    configure = out[out.index("TASK [aiinfra.gpu_cluster.gpu_cluster : Configure only the new nodes]"):
                    out.index("TASK [aiinfra.gpu_cluster.gpu_cluster : Set the new nodes' lifetime timer")]
    assert "[%s]" % nodes[0] in configure and "pytorch : " in configure
    assert [line for line in configure.splitlines() if nodes[1] in line] == ["skipping: [%s]" % nodes[1]]

    # the report: both attempts, the recovery's timeline, and a loss curve that goes on from the checkpoint
    first, final = summary_of(tmp_path, "rec"), summary_of(tmp_path, "rec-r1")
    assert first["status"] == "failed" and final["status"] == "succeeded"
    # the node that kept running was stopped and its whole log brought back, however slowly its stop answered (the
    # lost node may or may not have answered its stop, as its container went down)
    assert nodes[1] not in first["unstopped_nodes"], first["unstopped_nodes"]
    kept = tmp_path / "runs" / "rec" / nodes[1] / "torchrun.log"
    assert kept.exists() and events(kept.read_text(), "step"), first["nodes"][1]
    assert [(a["run_id"], a["status"]) for a in final["attempts"]] == [("rec", "failed"), ("rec-r1", "succeeded")]
    assert [(n["host"], n["rank"], n["reason"]) for n in final["attempts"][0]["lost"]] == [
        (nodes[0], 0, "stopped in the cloud")]
    recovery = final["recoveries"][0]
    assert recovery["lost"] == [nodes[0]] and recovery["run_id"] == "rec-r1"
    assert 0 < recovery["replaced_s"] <= recovery["configured_s"] <= recovery["relaunched_s"] \
        < recovery["running_again_s"] <= recovery["first_step_s"], recovery
    resumed = final["metrics"]["resumed_from_step"]
    assert resumed >= 40 and recovery["resumed_from_step"] == resumed
    assert final["metrics"]["first_step"] == resumed + 1 and final["metrics"]["last_step"] == 240
    assert final["steps"][0]["loss"] < first["steps"][0]["loss"]      # it went on, it did not start again
    assert "attempts: 2 (torchrun_max_recoveries 1)" in out
    assert re.search(r"recovery 1 \(%s lost\): from detection, replaced [\d.]+s, configured [\d.]+s, relaunched "
                     r"[\d.]+s, running again [\d.]+s" % nodes[0], out)
    print("recovery timeline: %s" % json.dumps(recovery))


def test_without_recoveries_the_play_fails_naming_the_node(cluster, tmp_path):
    nodes = cluster["nodes"]
    before = container_id(nodes[1])
    proc = start_training(cluster, tmp_path, "norec", {
        "torchrun_max_recoveries": "0",
        "torchrun_script_args": ["--steps", "3000", "--min-step-time", "0.05", "--checkpoint-every", "20"]})
    try:
        stopped = stop_node_when(proc, nodes[1], logged_step(rank0_log(cluster, "norec"), 20), "step 20")
        rc = finish(proc, 120)
        took = time.time() - stopped
        out = proc.out.read_text()
        assert rc != 0, out[-4000:]
        assert took <= 60, "the play took %.0fs to fail after the node stopped" % took
        summary = summary_of(tmp_path, "norec")
        assert summary["status"] == "failed" and nodes[1] in summary["failed_nodes"], summary["message"]
        assert "torchrun run norec failed: " in out and nodes[1] in summary["message"]
        assert "Replace the lost nodes" not in out and not (tmp_path / "runs" / "norec-r1").exists()
        assert [a["run_id"] for a in summary["attempts"]] == ["norec"] and summary["recoveries"] == []
        assert container_id(nodes[1]) == before                   # nothing was replaced
    finally:
        podman("start", nodes[1], check=False)
