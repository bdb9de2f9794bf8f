"""train.yml (the torchrun role) on 3 real local nodes: real torchrun processes, real network.

One cluster (provisioned, then the real pytorch role: the worker's shared cluster), used by the scenarios in turn;
after each test every node is brought back to a clean state (node running, no run left, no
blackhole route), so the tests do not depend on each other's outcome. Each train.yml run is a
second ansible-playbook invocation that finds the nodes with the inventory plugin.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from s3_server import S3Server
from conftest import ROOT, VENV_BIN, ansible_env, events, podman, run_playbook, unique_name, write_inventory

pytestmark = pytest.mark.slow

TRAIN = "playbooks/train.yml"
SIZE = 3
JOB_PROCS = ("torchrun", "train_example.py", "allreduce_check.py")


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """3 local nodes with PyTorch from the pytorch role: this worker's shared cluster (tests/conftest.py
    SharedCluster), handed over with no job state on any node; removed at the session's end, pass or fail."""
    return shared_cluster.take(SIZE)


@pytest.fixture(autouse=True)
def clean_nodes(cluster):
    """Whatever a test did, the next one starts from running nodes with no job and no broken route."""
    yield
    for node in cluster["nodes"]:
        podman("start", node, check=False)
    for node in cluster["nodes"]:
        wait_ssh(node)
        sh(node, "systemctl stop 'aiinfra-torchrun-*' 2>/dev/null; systemctl reset-failed 'aiinfra-torchrun-*' "
                 "2>/dev/null; for t in blackhole unreachable; do ip route show type $t | while read -r _ dst _; "
                 "do ip route del $t \"$dst\"; done; done; true")


def sh(node, command, check=False):
    return podman("exec", node, "sh", "-c", command, check=check)


def wait_ssh(node, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sh(node, "systemctl is-active ssh").stdout.strip() == "active":
            return
        time.sleep(1)
    raise AssertionError("%s: sshd did not come back" % node)


def job_processes(node):
    """torchrun agents and training workers still alive on a node."""
    out = sh(node, "ps -eo pid=,args=").stdout
    return [line.strip() for line in out.splitlines() if any(p in line for p in JOB_PROCS)
            and "ps -eo" not in line]


def active_units(node):
    out = sh(node, "systemctl list-units --no-legend --plain 'aiinfra-torchrun-*'").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def assert_nothing_left(cluster, nodes=None):
    for node in nodes or cluster["nodes"]:
        assert job_processes(node) == [], node
        assert active_units(node) == [], node


def train_args(tmp_path, run_id, extra=None):
    params = {"torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_id": run_id,
              "torchrun_progress_interval": 5}
    params.update(extra or {})
    return params


def train(cluster, tmp_path, run_id, extra=None, *args, check=False, timeout=600, forks=None):
    proc = run_playbook(TRAIN, *args, inventory=cluster["inventory"], extra_vars=train_args(tmp_path, run_id, extra),
                        check=check, timeout=timeout, env={"ANSIBLE_FORKS": str(forks)} if forks else None)
    return proc, summary_of(tmp_path, run_id)


def train_background(cluster, tmp_path, run_id, extra=None, forks=None):
    log = open(tmp_path / ("%s.out" % run_id), "w")
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", cluster["inventory"], "-e",
           json.dumps(train_args(tmp_path, run_id, extra))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env({"ANSIBLE_FORKS": str(forks)} if forks else None),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.output_path = tmp_path / ("%s.out" % run_id)
    return proc


def output_of(proc):
    return proc.output_path.read_text()


def summary_of(tmp_path, run_id):
    path = tmp_path / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def node_log(node, run_id):
    return sh(node, "cat /var/lib/aiinfra/torchrun/runs/%s/torchrun.log 2>/dev/null" % run_id).stdout


def wait_for_step(node, run_id, step, proc=None, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [e["step"] for e in events(node_log(node, run_id), "step")]
        if steps and max(steps) >= step:
            return max(steps)
        if proc is not None and proc.poll() is not None:
            raise AssertionError("train.yml ended before step %d:\n%s" % (step, output_of(proc)[-4000:]))
        time.sleep(1)
    raise AssertionError("%s never logged step %d" % (node, step))


# -- 2: 3 nodes x 2 processes -------------------------------------------------------------------------

def test_three_nodes_two_processes_each(cluster, tmp_path):
    # one fork (the verdict must not depend on how many hosts Ansible runs at once), and every value typed as a
    # string, as `-e key=value`, an extra-vars file or an AWX survey gives it
    proc, summary = train(cluster, tmp_path, "six", {"torchrun_cpu_nproc_per_node": "2",
                                                     "torchrun_script_args": "--steps 120",
                                                     "torchrun_poll_interval": "2", "torchrun_plot": "yes"},
                          forks=1)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert summary["nnodes"] == 3 and summary["world_size"] == 6
    assert summary["ranks_reported"] == [0, 1, 2, 3, 4, 5]
    rows = summary["nodes"]
    assert [(r["host"], r["node_rank"], r["exit_code"], r["phase"]) for r in rows] == [
        (node, rank, 0, "succeeded") for rank, node in enumerate(cluster["nodes"])]
    # node rank = gpu_cluster_rank, and the global ranks follow it: node r runs ranks 2r and 2r+1
    assert [r["ranks"] for r in rows] == [[0, 1], [2, 3], [4, 5]]
    # all nodes were started at once, not one after another
    starts = [r["started_at"] for r in rows]
    assert max(starts) - min(starts) < 5, starts
    assert summary["metrics"]["loss_went_down"] and summary["metrics"]["last_step"] == 120
    run_dir = tmp_path / "runs" / "six"
    for node in cluster["nodes"]:
        text = (run_dir / node / "torchrun.log").read_text()
        assert len(events(text, "joined")) == 2
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SUCCEEDED" in (run_dir / "summary.txt").read_text()
    # the readable summary and the progress lines are in the play's output
    assert "torchrun run six (job example): SUCCEEDED" in proc.stdout
    assert "ranks in 6/6" in proc.stdout and "| step " in proc.stdout
    assert_nothing_left(cluster)

    # the same run id again: it succeeded, so it is reported again and nothing runs twice; without pipelining (an
    # inventory of the user's own, Ansible's default), so the launch round runs the torchrun_job module on each node
    # instead of the payload program
    again, summary = train(cluster, tmp_path, "six", {"torchrun_cpu_nproc_per_node": 2, "ansible_pipelining": False,
                                                      "torchrun_script_args": ["--steps", "120"]})
    assert again.returncode == 0, again.stdout[-3000:]
    assert summary["status"] == "succeeded" and summary["world_size"] == 6
    for node in cluster["nodes"]:
        assert len(events(node_log(node, "six"), "joined")) == 2  # no second launch


def test_check_mode_prints_each_nodes_command_and_starts_nothing(cluster, tmp_path):
    proc, summary = train(cluster, tmp_path, "dry", {"torchrun_cpu_nproc_per_node": 2}, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    for rank, node in enumerate(cluster["nodes"]):
        assert "ok: [%s] => " % node in proc.stdout
    text = " ".join(proc.stdout.split())
    for rank in range(SIZE):
        assert "--node-rank %d --rdzv-backend c10d" % rank in text
    assert text.count("/opt/aiinfra/pytorch/bin/torchrun --nnodes 3 --nproc-per-node 2") == 3
    assert "is_host=1" in text and "NCCL_SOCKET_IFNAME=eth0" in text
    assert summary is None
    for node in cluster["nodes"]:
        assert sh(node, "test -e /var/lib/aiinfra/torchrun/runs/dry && echo yes").stdout.strip() == ""
    assert_nothing_left(cluster)


# -- 3: a node dies mid-training; the re-run resumes --------------------------------------------------

def test_node_stopped_mid_training_fails_fast_and_resumes(cluster, tmp_path):
    nodes = cluster["nodes"]
    extra = {"torchrun_job_name": "resume", "torchrun_cpu_nproc_per_node": 1,
             "torchrun_script_args": ["--steps", "3000", "--min-step-time", "0.05", "--checkpoint-every", "20"]}
    # fewer forks than nodes: the node stopped is the one named, and only that one first
    proc = train_background(cluster, tmp_path, "dies", extra, forks=2)
    try:
        wait_for_step(nodes[0], "dies", 60, proc)
        stopped_at = time.time()
        podman("stop", nodes[2])
        rc = proc.wait(timeout=120)
        took = time.time() - stopped_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = output_of(proc)
    assert rc != 0, out[-4000:]
    assert took <= 60, "the play took %.0fs to fail after the node stopped" % took
    summary = summary_of(tmp_path, "dies")
    assert summary["status"] == "failed" and summary["failed_nodes"][0] == nodes[2], summary["message"]
    assert summary["message"].startswith("%s (node rank 2) failed: " % nodes[2]), summary["message"]
    assert "%s (node rank 2)" % nodes[2] in out and "failed" in out
    # no torchrun or training process anywhere on the survivors
    assert_nothing_left(cluster, nodes[:2])
    checkpoints = events((tmp_path / "runs" / "dies" / nodes[0] / "torchrun.log").read_text(), "checkpoint")
    last = checkpoints[-1]["step"]
    assert last >= 60

    podman("start", nodes[2])
    wait_ssh(nodes[2])
    extra["torchrun_script_args"] = ["--steps", str(last + 30), "--checkpoint-every", "20"]
    again, summary = train(cluster, tmp_path, "resumed", extra)
    assert again.returncode == 0, again.stdout[-5000:]
    assert summary["status"] == "succeeded"
    assert summary["metrics"]["resumed_from_step"] == last
    assert summary["metrics"]["first_step"] == last + 1 and summary["metrics"]["last_step"] == last + 30
    log0 = (tmp_path / "runs" / "resumed" / nodes[0] / "torchrun.log").read_text()
    assert events(log0, "resume")[0]["step"] == last
    assert min(e["step"] for e in events(log0, "step")) == last + 1


# -- 4: a worker dies and torchrun restarts the group; a controller that dies is re-attached ----------

def test_worker_killed_restarts_and_a_rerun_attaches(cluster, tmp_path):
    nodes = cluster["nodes"]
    extra = {"torchrun_job_name": "restart", "torchrun_max_restarts": 1, "torchrun_cpu_nproc_per_node": 2,
             "torchrun_script_args": ["--steps", "120", "--min-step-time", "0.1", "--checkpoint-every", "20"]}
    proc = train_background(cluster, tmp_path, "restart", extra)
    try:
        wait_for_step(nodes[0], "restart", 30, proc)
    finally:
        # the controller dies; the job goes on in its systemd units
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert all(active_units(n) == ["aiinfra-torchrun-restart.service"] for n in nodes)
    workers = [line.split()[0] for line in job_processes(nodes[1])
               if "train_example.py" in line and "bin/torchrun" not in line]
    assert len(workers) == 2, job_processes(nodes[1])
    sh(nodes[1], "kill -9 %s" % workers[-1], check=True)

    again, summary = train(cluster, tmp_path, "restart", extra)
    assert again.returncode == 0, again.stdout[-5000:]
    for node in nodes:  # the re-run attached to the running units, it started nothing
        assert re.search(r"ok: \[%s\] =>\s+msg: .?attached: cd " % node, again.stdout), again.stdout[-3000:]
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert [r["exit_code"] for r in summary["nodes"]] == [0, 0, 0]
    row = summary["nodes"][1]
    assert row["restarts"] >= 1, row
    log1 = node_log(nodes[1], "restart")
    assert "Worker group FAILED. 1/1 attempts left; will restart worker group" in log1
    assert {e.get("restart") for e in events(log1, "joined")} == {0, 1}
    # the restarted workers resumed from a checkpoint, they did not start again from step 0
    assert summary["metrics"]["resumed_from_step"] >= 20
    assert summary["metrics"]["last_step"] == 120
    assert_nothing_left(cluster)


# -- 5: bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    ({"torchrun_script": "/nonexistent/train.py"}, "torchrun_script /nonexistent/train.py does not exist on the "
                                                   "controller"),
    ({"torchrun_script_args": "--name 'unclosed"}, "torchrun_script_args: cannot split \"--name 'unclosed\" like a "
                                                   "shell would (No closing quotation)"),
    ({"torchrun_rdzv_port": "port"}, "argument 'torchrun_rdzv_port' is of type str and we were unable to convert to "
                                     "int"),
    ({"torchrun_nproc_per_node": 0}, "torchrun_nproc_per_node must be 'auto' or at least 1 (got 0)"),
    ({"torchrun_cpu_nproc_per_node": 0}, "torchrun_cpu_nproc_per_node must be at least 1 (got 0)"),
])
def test_bad_settings_fail_before_anything_starts(cluster, tmp_path, extra, message):
    proc, summary = train(cluster, tmp_path, "bad", extra)
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split())
    assert summary is None
    assert_nothing_left(cluster)


def test_empty_gpu_nodes_fails_clearly(tmp_path):
    inventory = write_inventory(tmp_path, unique_name("none"), 2)
    proc = run_playbook(TRAIN, inventory=inventory, check=False, timeout=300)
    assert proc.returncode != 0
    assert "The gpu_nodes group is empty" in proc.stdout


def test_rendezvous_port_unreachable_names_the_node(cluster, tmp_path):
    nodes = cluster["nodes"]
    rank0 = sh(nodes[0], "hostname -I").stdout.split()[0]
    sh(nodes[2], "ip route add unreachable %s/32" % rank0, check=True)  # node 2 cannot reach rank 0 at all
    started = time.time()
    proc, summary = train(cluster, tmp_path, "nordzv", {"torchrun_job_name": "nordzv", "torchrun_rdzv_timeout": 30})
    took = time.time() - started
    assert proc.returncode != 0
    assert took < 120, took
    text = " ".join(proc.stdout.split())
    assert "the rendezvous did not complete within torchrun_rdzv_timeout (30s); did not join: %s (node rank 2): " \
           "cannot reach the rendezvous endpoint %s:29400" % (nodes[2], rank0) in text
    assert summary["reason"] == "rendezvous" and summary["failed_nodes"] == [nodes[2]]
    assert_nothing_left(cluster)


def test_job_timeout_stops_everything(cluster, tmp_path):
    started = time.time()
    proc, summary = train(cluster, tmp_path, "slow", {
        "torchrun_job_name": "slow", "torchrun_timeout": 60,
        "torchrun_script_args": ["--steps", "100000", "--min-step-time", "0.05"]})
    took = time.time() - started
    assert proc.returncode != 0
    assert took < 60 + 60, took  # the unit's RuntimeMaxSec, then the stop and the report
    assert "ran past torchrun_timeout (60s) and was stopped" in " ".join(proc.stdout.split())
    assert summary["reason"] == "timeout"
    first = next(n for n in summary["nodes"] if n["host"] == summary["failed_nodes"][0])
    assert first["result"] == "timeout" and first["phase"] == "timeout", first
    assert_nothing_left(cluster)


# -- distributed prediction: the shipped example over every rank -------------------------------------

def test_batch_prediction_over_every_rank(cluster, tmp_path):
    # a model to predict with: a short training run of a job of its own, its checkpoint on node rank 0 only
    job = "predsrc-%s" % unique_name("p")[-6:]
    proc, summary = train(cluster, tmp_path, "predsrc", {"torchrun_job_name": job,
                                                         "torchrun_script_args": "--steps 20 --checkpoint-every 10"})
    assert proc.returncode == 0 and summary["status"] == "succeeded", proc.stdout[-3000:]
    ckpts = "/var/lib/aiinfra/torchrun/jobs/%s/checkpoints" % job
    assert "ckpt-00000020.pt" in sh(cluster["nodes"][0], "ls %s" % ckpts).stdout
    assert "ckpt-" not in sh(cluster["nodes"][1], "ls %s 2>/dev/null" % ckpts).stdout

    data_dir = "/srv/%s-input" % job
    ids = ["f%d-%03d" % (f, i) for f in range(5) for i in range(401)]
    rng = random.Random(7)
    with S3Server(cluster["name"]) as s3:
        client = s3.client()
        client.create_bucket(Bucket="predict")
        for f in range(5):
            body = "".join(json.dumps({"id": "f%d-%03d" % (f, i), "features": [rng.gauss(0, 1) for dummy in range(32)]})
                           + "\n" for i in range(401))
            client.put_object(Bucket="predict", Key="input/part-%d.jsonl" % f, Body=body.encode())
        # the input staged onto every node by the dataset role, then the prediction job reads it from
        # AIINFRA_DATA_DIR; every value a string, as a survey or -e gives it; 3 nodes x 2 processes
        storage = {"gpu_cluster_storage_options": s3.options()}
        proc = run_playbook("playbooks/data.yml", inventory=cluster["inventory"], check=False, timeout=600,
                            extra_vars=dict(storage, dataset_uri="s3://predict/input", dataset_dir=data_dir))
        assert proc.returncode == 0, proc.stdout[-5000:]
        extra = train_args(tmp_path, "pred", dict(storage, torchrun_cpu_nproc_per_node="2", torchrun_fetch_outputs="yes",
                                                  dataset_dir=data_dir, torchrun_output_uri="s3://predict/out/",
                                                  gpu_cluster_predict_args="--model %s --batch-size 256" % ckpts))
        proc = run_playbook("playbooks/predict.yml", inventory=cluster["inventory"], extra_vars=extra, check=False,
                            timeout=600)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert s3.secret not in proc.stdout
        uploaded = sorted(o["Key"] for o in client.list_objects_v2(Bucket="predict", Prefix="out/")["Contents"])
    rank_names = ["predictions-rank-%05d.jsonl" % g for g in range(6)]
    assert uploaded == sorted("out/pred/" + n for n in rank_names + ["predictions.jsonl", "predictions-summary.json"])

    summary = summary_of(tmp_path, "pred")
    assert summary["job"] == "predict" and summary["status"] == "succeeded" and summary["world_size"] == 6
    metrics = summary["metrics"]
    assert metrics["samples"] == len(ids) and metrics["samples_per_s"] > 0 and metrics["steps_logged"] == 0
    assert "%d samples in" % len(ids) in proc.stdout and "over 6 ranks" in proc.stdout and "samples/s" in proc.stdout

    run_dir = tmp_path / "runs" / "pred"
    assert sorted(summary["outputs"]) == cluster["nodes"]
    rank_files, seen = {}, []
    for node in cluster["nodes"]:
        out = run_dir / node / "outputs"
        assert str(out) in summary["outputs"][node] and "s3://predict/out/pred/" in summary["outputs"][node]
        for path in sorted(out.glob("predictions-rank-*.jsonl")):
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            rank_files[path.name] = node
            seen += [r["id"] for r in rows]
            assert all(0 <= r["class"] < 8 and 0 < r["score"] <= 1 for r in rows)
    # one file per global rank, each on the node that ran it (node r runs ranks 2r, 2r+1)
    assert rank_files == dict((name, cluster["nodes"][g // 2]) for g, name in enumerate(rank_names))
    assert sorted(seen) == ids  # every input record predicted exactly once
    merged = run_dir / cluster["nodes"][0] / "outputs" / "predictions.jsonl"
    assert [json.loads(line)["id"] for line in merged.read_text().splitlines()] == ids
    pred_summary = json.loads((run_dir / cluster["nodes"][0] / "outputs" / "predictions-summary.json").read_text())
    assert pred_summary["samples"] == len(ids) and "ckpt-00000020.pt" in pred_summary["model"]
    assert_nothing_left(cluster)
