"""train.yml -e gpu_cluster_framework=tensorflow: a TensorFlow MultiWorkerMirroredStrategy job through the torchrun
machinery (the same units, watch, checkpoints and report), on 2 real local nodes with the tensorflow role installed
(marker tensorflow, make test-tensorflow): the shipped example trains across both workers; a node stopped mid-run
fails the play naming it with nothing left running and a re-run resumes from the checkpoint; a node without
TensorFlow fails the play before anything starts. The bad-input rows that need no cluster (an unknown framework, a
missing script, Docker mode) run in the default suite: the plan refuses them before any node is reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (ROOT, VENV_BIN, ansible_env, destroy_cluster, events, local_name, podman, run_playbook,
                      write_inventory)

TRAIN = "playbooks/train.yml"
TF = {"gpu_cluster_framework": "tensorflow"}


# -- bad input, refused by the plan on the controller (default suite: no node is reached) -----------------------------

@pytest.mark.parametrize("extra, message", [
    ({"gpu_cluster_framework": "jax"},
     "unknown framework 'jax': torchrun_framework (gpu_cluster_framework in playbooks/train.yml) must be pytorch or "
     "tensorflow"),
    (dict(TF, gpu_cluster_train_script="/nonexistent/train_tf.py"),
     "torchrun_script /nonexistent/train_tf.py does not exist on the controller"),
    (dict(TF, torchrun_docker_image="tensorflow/tensorflow:2.21.0"), "Docker mode is for torchrun jobs"),
], ids=["unknown-framework", "missing-script", "docker"])
def test_bad_tensorflow_input_fails_before_any_node_is_reached(tmp_path, extra, message):
    # hosts nobody can reach (TEST-NET-1): the plan runs on the controller, before the first connection
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("gpu_nodes:\n  hosts:\n    tf-bad-0: {ansible_host: 192.0.2.1}\n"
                         "    tf-bad-1: {ansible_host: 192.0.2.2}\n")
    proc = run_playbook(TRAIN, inventory=str(inventory), check=False, timeout=300,
                        extra_vars=dict(extra, gpu_cluster_cloud="none", torchrun_runs_dir=str(tmp_path / "runs")))
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0, text[-3000:]
    assert message in text, text[-3000:]
    assert "UNREACHABLE" not in text and "unreachable=1" not in text, text[-3000:]
    assert not (tmp_path / "runs").exists()


# -- 2 local nodes with TensorFlow (marker tensorflow) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """2 fresh local nodes, configure.yml with gpu_cluster_frameworks tensorflow; removed at the end, pass or fail."""
    name = local_name("tf-train")
    tmp = tmp_path_factory.mktemp("tf-train")
    try:
        inventory = write_inventory(tmp, name, size=2)
        run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
        began = time.time()
        # profile_roles: the time of each role, the tensorflow role's install on a fresh node among them (printed
        # with -s, as make test-tensorflow runs it)
        done = run_playbook("playbooks/configure.yml", inventory=inventory, timeout=2400,
                            extra_vars={"gpu_cluster_frameworks": "tensorflow"},
                            env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles"})
        print("configure.yml (gpu_cluster_frameworks tensorflow) on 2 fresh nodes: %.0fs; by role:\n%s"
              % (time.time() - began, "\n".join(ln for ln in done.stdout.splitlines()[-40:] if " -----" in ln)))
        yield {"name": name, "inventory": inventory, "nodes": ["%s-%d" % (name, rank) for rank in range(2)]}
    finally:
        destroy_cluster(name)


def sh(node, command, check=False):
    return podman("exec", node, "sh", "-c", command, check=check)


def wait_ssh(node, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sh(node, "systemctl is-active ssh").stdout.strip() == "active":
            return
        time.sleep(1)
    raise AssertionError("%s: sshd did not come back" % node)


def job_processes(node):
    out = sh(node, "ps -eo pid=,args=").stdout
    return [line.strip() for line in out.splitlines() if "train_example.py" in line and "ps -eo" not in line]


def active_units(node):
    out = sh(node, "systemctl list-units --no-legend --plain 'aiinfra-torchrun-*'").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def train_vars(tmp_path, run_id, extra):
    return dict(TF, torchrun_runs_dir=str(tmp_path / "runs"), torchrun_run_id=run_id, torchrun_progress_interval=5,
                **extra)


def train(cluster, tmp_path, run_id, extra, timeout=900):
    proc = run_playbook(TRAIN, inventory=cluster["inventory"], extra_vars=train_vars(tmp_path, run_id, extra),
                        check=False, timeout=timeout)
    return proc, summary_of(tmp_path, run_id)


def summary_of(tmp_path, run_id):
    path = tmp_path / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def node_log(node, run_id):
    return sh(node, "cat /var/lib/aiinfra/torchrun/runs/%s/torchrun.log 2>/dev/null" % run_id).stdout


@pytest.mark.tensorflow
def test_the_example_trains_across_both_workers(cluster, tmp_path):
    nodes = cluster["nodes"]
    # typed as a survey gives them: one string of script arguments
    proc, summary = train(cluster, tmp_path, "tf-trains", {
        "torchrun_job_name": "tf-trains", "gpu_cluster_train_script_args": "--steps 150 --steps-per-epoch 50"})
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:]
    assert summary["status"] == "succeeded" and summary["world_size"] == 2, summary.get("message")
    # one process per node, the TensorFlow virtualenv's python, TF_CONFIG naming both workers in rank order
    text = " ".join(out.split())
    addresses = [summary["nodes"][rank]["address"] for rank in range(2)]
    workers = json.dumps(["%s:29410" % a for a in addresses], separators=(",", ":"))
    for rank in range(2):
        assert ('TF_CONFIG=\'\'{"cluster":{"worker":%s},"task":{"index":%d,"type":"worker"}}\'\' '
                '/opt/aiinfra/tensorflow/bin/python /var/lib/aiinfra/torchrun/jobs/tf-trains/train_example.py '
                '--steps 150 --steps-per-epoch 50' % (workers, rank)) in text, text[-5000:]
    assert "torchrun --nnodes" not in text
    # one MultiWorkerMirroredStrategy cluster of 2: both workers joined it, 2 replicas in sync
    for rank, node in enumerate(nodes):
        joined = events((tmp_path / "runs" / "tf-trains" / node / "torchrun.log").read_text(), "joined")
        assert [(e["rank"], e["world_size"], e["replicas"]) for e in joined] == [(rank, 2, 2)], joined
    log0 = (tmp_path / "runs" / "tf-trains" / nodes[0] / "torchrun.log").read_text()
    steps = events(log0, "step")
    assert steps[0]["step"] == 10 and steps[-1]["step"] == 150
    assert steps[-1]["loss"] < steps[0]["loss"] / 2, steps
    done = events(log0, "done")[0]
    assert done["eval_acc"] > 0.5, done
    # the report: the loss plot, the summary the play prints
    assert (tmp_path / "runs" / "tf-trains" / "loss.png").stat().st_size > 1000
    assert "SUCCEEDED" in out and "(went down)" in out, out[-3000:]
    assert summary["metrics"]["last_step"] == 150
    # the workers' port is in the host firewall, admitted from the cluster's nodes only
    rules = sh(nodes[0], "nft list table inet aiinfra_torchrun").stdout
    assert "29410" in rules and addresses[1] in rules, rules
    for node in nodes:
        assert job_processes(node) == [] and active_units(node) == [], node


@pytest.mark.tensorflow
def test_a_node_stopped_mid_run_fails_the_play_naming_it_and_a_rerun_resumes(cluster, tmp_path):
    nodes = cluster["nodes"]
    extra = {"torchrun_job_name": "tf-resume",
             "torchrun_script_args": ["--steps", "5000", "--steps-per-epoch", "20", "--min-step-time", "0.05"]}
    log = open(tmp_path / "dies.out", "w")
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", cluster["inventory"], "-e",
           json.dumps(train_vars(tmp_path, "tf-dies", extra))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while True:
            steps = [e["step"] for e in events(node_log(nodes[0], "tf-dies"), "step")]
            if steps and max(steps) >= 60:
                break
            assert proc.poll() is None, (tmp_path / "dies.out").read_text()[-4000:]
            assert time.time() < deadline, "rank 0 never logged step 60"
            time.sleep(1)
        stopped_at = time.time()
        podman("stop", nodes[1])
        rc = proc.wait(timeout=300)
        took = time.time() - stopped_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    try:
        out = (tmp_path / "dies.out").read_text()
        assert rc != 0, out[-4000:]
        summary = summary_of(tmp_path, "tf-dies")
        assert summary["status"] == "failed" and summary["failed_nodes"][0] == nodes[1], summary["message"]
        assert summary["message"].startswith("%s (node rank 1) failed: " % nodes[1]), summary["message"]
        assert "%s (node rank 1)" % nodes[1] in out
        # nothing left running on the survivor
        assert job_processes(nodes[0]) == [] and active_units(nodes[0]) == []
        # rank 0's log as the node keeps it (the controller's copy may be the watch's partial one under load)
        checkpoints = events(node_log(nodes[0], "tf-dies"), "checkpoint")
        last = checkpoints[-1]["step"]
        assert last >= 60 and last % 20 == 0
    finally:
        podman("start", nodes[1], check=False)
        wait_ssh(nodes[1])
    # the re-run resumes from the newest checkpoint both workers hold complete (the node stopped may have missed
    # rank 0's last one): each checkpoint's data marker is written last
    listing = "cd /var/lib/aiinfra/torchrun/jobs/tf-resume/checkpoints && ls ckpt-*.data-00000-of-00001.sha256"
    held = [set(int(name[5:13]) for name in sh(node, listing).stdout.split()) for node in nodes]
    common = max(held[0] & held[1])
    assert common >= 20 and last in held[0], held
    extra["torchrun_script_args"] = ["--steps", str(last + 40), "--steps-per-epoch", "20"]
    again, summary = train(cluster, tmp_path, "tf-resumed", extra)
    assert again.returncode == 0, again.stdout[-5000:]
    assert summary["status"] == "succeeded", summary.get("message")
    log0 = (tmp_path / "runs" / "tf-resumed" / nodes[0] / "torchrun.log").read_text()
    resumed = [e["step"] for e in events(log0, "resume")]
    assert resumed == [common], (resumed, held)
    assert summary["metrics"]["resumed_from_step"] == common
    steps = [e["step"] for e in events(log0, "step")]
    assert min(steps) == common + 10 and max(steps) == last + 40, steps
    assert summary["metrics"]["last_step"] == last + 40


@pytest.mark.tensorflow
def test_a_node_without_tensorflow_fails_the_play_before_anything_starts(cluster, tmp_path):
    nodes = cluster["nodes"]
    sh(nodes[1], "mv /opt/aiinfra/tensorflow /opt/aiinfra/tensorflow.away", check=True)
    try:
        proc, summary = train(cluster, tmp_path, "tf-missing", {"torchrun_job_name": "tf-missing"}, timeout=600)
    finally:
        sh(nodes[1], "mv /opt/aiinfra/tensorflow.away /opt/aiinfra/tensorflow", check=True)
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0, text[-3000:]
    assert ("TensorFlow is not installed on %s: no /opt/aiinfra/tensorflow/bin/python (add tensorflow to "
            "gpu_cluster_frameworks and run playbooks/configure.yml" % nodes[1]) in text, text[-3000:]
    assert "Nothing was started" in text and summary is None
    for node in nodes:  # nothing started: no run directory, no unit
        assert sh(node, "ls /var/lib/aiinfra/torchrun/runs/tf-missing").returncode != 0, node
        assert active_units(node) == [], node


@pytest.mark.tensorflow
def test_verify_checks_the_tensorflow_allreduce_across_the_workers(cluster, tmp_path):
    """A TensorFlow-only cluster: verify.yml checks TensorFlow (its all-reduce over both workers), not PyTorch."""
    proc = run_playbook("playbooks/verify.yml", inventory=cluster["inventory"], check=False, timeout=900,
                        extra_vars={"torchrun_runs_dir": str(tmp_path / "runs"),
                                    "verify_allreduce_args": ["--size-mb", "4", "--iters", "3"]})
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout[-5000:]
    nodes = cluster["nodes"]
    for rank, node in enumerate(nodes):
        assert "%s (worker %d): all-reduce of 4.0 MiB in" % (node, rank) in text, text[-3000:]
    assert text.count("GB/s, sum correct") == 2 and "WRONG" not in text, text[-3000:]
    # no PyTorch on these nodes: its checks are left out (they would fail: no /opt/aiinfra/pytorch)
    assert "every node runs torch" not in text and text.count("bus bandwidth") == 2, text[-3000:]
    run = next(p for p in (tmp_path / "runs").iterdir() if (p / "summary.json").exists())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["framework"] == "tensorflow" and summary["world_size"] == 2
    for node in nodes:
        allreduce = events((run / node / "torchrun.log").read_text(), "allreduce")
        assert len(allreduce) == 1 and allreduce[0]["sum_ok"] and allreduce[0]["all_ranks_ok"], allreduce
        assert allreduce[0]["replicas"] == 2 and allreduce[0]["expected"] == 3.0, allreduce
