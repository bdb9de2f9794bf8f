"""Checkpoints in object storage (torchrun_checkpoint_uri) on real local nodes, against a moto S3 server.

One 2-node cluster with PyTorch (the worker's shared cluster, tests/conftest.py SharedCluster) and a moto S3 server
on its network's gateway. The tests run in order on it: bad input fails before anything starts; a run uploads its
checkpoints while it runs; the cluster is torn down and a new one provisioned, which resumes at the checkpointed step, skipping a newer corrupt and a newer
partial object (the new cluster is the shared one from then on). The S3 servers are stopped at the end and the
shared cluster removed at the session's end, pass or fail.

moto keeps its objects in memory and is bound to the gateway of a network that the teardown removes, so the
bucket's objects (with their metadata) are carried to a new moto server on the new cluster's gateway by the test:
that is S3's durability, not anything the nodes kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import ROOT, VENV_BIN, ansible_env, cluster_leftovers, podman, run_playbook
from s3_server import S3Server

TRAIN = "playbooks/train.yml"
SIZE = 2
BUCKET = "ckpt"
PREFIX = "jobs/ckp-example"
URI = "s3://%s/%s" % (BUCKET, PREFIX)
CKPT_DIR = "/var/lib/aiinfra/torchrun/jobs/example/checkpoints"


def with_s3(state):
    """The cluster handed over by the worker's SharedCluster, and a moto S3 server on its gateway."""
    state = dict(state, s3=None)
    state["s3"] = S3Server(state["name"]).start()
    return state


def stop_s3(state):
    if state.get("s3") is not None:
        state["s3"].stop()
        state["s3"] = None


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """The cluster the tests use in turn: the worker's shared cluster (the resume test tears it down and a new one
    is provisioned, which is then the shared cluster); the S3 servers are stopped at the end, pass or fail."""
    state = {}
    try:
        state.update(with_s3(shared_cluster.take(SIZE)))
        state["s3"].client().create_bucket(Bucket=BUCKET)
        state["shared"] = shared_cluster
        yield state
    finally:
        stop_s3(state)


def sh(node, command):
    return podman("exec", node, "sh", "-c", command, check=False)


def train_args(cluster, tmp_path, run_id, extra=None, options=None):
    params = {"torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_id": run_id,
              "torchrun_progress_interval": 5, "torchrun_checkpoint_uri": URI,
              "torchrun_checkpoint_interval": 1, "torchrun_checkpoint_stable_seconds": 1,
              "gpu_cluster_storage_options": cluster["s3"].options() if options is None else options}
    params.update(extra or {})
    return params


def summary_of(tmp_path, run_id):
    path = tmp_path / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def train(cluster, tmp_path, run_id, steps, check=True, **kw):
    extra = dict({"torchrun_script_args": ["--steps", str(steps), "--checkpoint-every", "10"]}, **kw.pop("extra", {}))
    proc = run_playbook(TRAIN, inventory=cluster["inventory"], extra_vars=train_args(cluster, tmp_path, run_id, extra,
                                                                                     **kw), check=check, timeout=600)
    return proc, summary_of(tmp_path, run_id)


def objects(cluster):
    listed = cluster["s3"].client().list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/").get("Contents") or []
    return sorted(item["Key"][len(PREFIX) + 1:] for item in listed)


def nothing_started(cluster, run_id):
    for node in cluster["nodes"]:
        units = sh(node, "systemctl list-units --all --no-legend --plain 'aiinfra-torchrun-*' 'aiinfra-ckpt-*'")
        assert units.stdout.strip() == "", node
        assert sh(node, "test -e /var/lib/aiinfra/torchrun/runs/%s && echo yes" % run_id).stdout.strip() == "", node


def checkpoint_files(node):
    return sorted(sh(node, "ls -A %s 2>/dev/null" % CKPT_DIR).stdout.split())


# -- 1: bad input, before anything starts -----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["scheme", "bucket", "credentials"])
def test_bad_input_fails_clearly_before_the_job_starts(cluster, tmp_path, case):
    run_id = "bad-%s" % case
    options = None
    extra = {}
    if case == "scheme":
        extra = {"torchrun_checkpoint_uri": "ftp://%s/x" % BUCKET}
        expect = "the scheme 'ftp' is not an object storage scheme"
    elif case == "bucket":
        extra = {"torchrun_checkpoint_uri": "s3://no-such-bucket-ckp/x"}
        expect = "no-such-bucket-ckp"
    else:  # an endpoint but no keys, and the nodes have no credentials of their own
        options = {"endpoint_url": cluster["s3"].url, "region": "us-east-1"}
        expect = "credentials"
    proc, summary = train(cluster, tmp_path, run_id, 20, check=False, extra=extra, options=options)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert expect in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    if case != "scheme":
        assert "could not be restored on" in proc.stdout and "Nothing was started" in proc.stdout
    assert cluster["s3"].secret not in proc.stdout
    assert summary is None
    nothing_started(cluster, run_id)


# -- 2: uploaded while the job runs; a new cluster resumes at the newest good checkpoint ----------------------

def test_checkpoints_upload_while_running_and_a_new_cluster_resumes_skipping_corrupt_ones(cluster, tmp_path):
    run_id = "ckpt-first"
    log = open(tmp_path / "first.out", "w")
    args = train_args(cluster, tmp_path, run_id, {"torchrun_script_args": [
        "--steps", "40", "--checkpoint-every", "10", "--min-step-time", "0.25"]})
    proc = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", cluster["inventory"], "-e",
                             json.dumps(args)], cwd=ROOT, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        seen_running = None
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            found = [k for k in objects(cluster) if k.startswith("ckpt-")]
            running = sh(cluster["nodes"][0], "systemctl is-active aiinfra-torchrun-%s" % run_id).stdout.strip()
            if found and running == "active":
                seen_running = found
                break
            time.sleep(1)
        assert seen_running, "no checkpoint object appeared in S3 while the job ran:\n" + (
            tmp_path / "first.out").read_text()[-4000:]
        assert proc.wait(timeout=300) == 0, (tmp_path / "first.out").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(30)
    output = (tmp_path / "first.out").read_text()
    assert cluster["s3"].secret not in output
    summary = summary_of(tmp_path, run_id)
    assert summary["status"] == "succeeded"
    ckpt = summary["checkpoints"]
    assert ckpt["uri"] == URI and ckpt["final_push"] is True and ckpt["upload_errors"] == []
    keys = objects(cluster)
    assert ["ckpt-%08d.pt" % s for s in range(10, 41, 10)] == [k for k in keys if k.startswith("ckpt-")
                                                               and not k.endswith(".sha256")], keys
    # the completeness rule: each checkpoint with its marker (written last)
    assert ["ckpt-%08d.pt.sha256" % s for s in range(10, 41, 10)] == [k for k in keys if k.endswith(".sha256")], keys
    assert not [k for k in keys if ".tmp" in k or k.startswith(".")], keys
    assert ckpt["uploaded_files"] >= 4 and "uploaded %d files" % ckpt["uploaded_files"] in output
    # the credentials file: root's only, and nowhere on the uploader's command line or in the run's files
    node0 = cluster["nodes"][0]
    assert sh(node0, "ls /etc/aiinfra/torchrun/").stdout.split() == []  # removed after the last push
    assert cluster["s3"].secret not in sh(node0, "cat /var/lib/aiinfra/torchrun/runs/%s/*; ps -eo args" % run_id
                                          ).stdout

    # the bucket outlives the cluster: keep its objects, tear everything down, provision a new cluster
    saved = {}
    client = cluster["s3"].client()
    for key in keys:
        got = client.get_object(Bucket=BUCKET, Key="%s/%s" % (PREFIX, key))
        saved[key] = (got["Body"].read(), got.get("Metadata") or {})
    run_playbook("playbooks/teardown.yml", inventory=cluster["inventory"], timeout=600)
    stop_s3(cluster)
    old = cluster["name"]
    assert cluster_leftovers(old) == []
    cluster.update(with_s3(cluster["shared"].rebuild(SIZE)))
    assert cluster["name"] != old
    client = cluster["s3"].client()
    client.create_bucket(Bucket=BUCKET)
    for key, (body, meta) in saved.items():
        client.put_object(Bucket=BUCKET, Key="%s/%s" % (PREFIX, key), Body=body, Metadata=meta)
    # newer than the good ones, and never to be taken: wrong content for its sha256 (a torn or tampered upload),
    # and one without any checksum (not uploaded by us, e.g. a partial copy)
    good = saved["ckpt-00000040.pt"][0]
    client.put_object(Bucket=BUCKET, Key="%s/ckpt-00000050.pt" % PREFIX, Body=good[: len(good) // 2],
                      Metadata={"sha256": hashlib.sha256(good).hexdigest()})
    client.put_object(Bucket=BUCKET, Key="%s/ckpt-00000055.pt" % PREFIX, Body=good)
    assert checkpoint_files(cluster["nodes"][0]) == []

    proc, summary = train(cluster, tmp_path, "ckpt-resumed", 60)
    assert summary["status"] == "succeeded"
    assert summary["metrics"]["resumed_from_step"] == 40, proc.stdout[-3000:]
    assert "resumed from the checkpoint of step 40" in proc.stdout
    ckpt = summary["checkpoints"]
    assert ckpt["restored_files"] == 2 * 4 * SIZE, ckpt  # 4 checkpoints and their markers on each node
    assert sorted(set(c["path"] for c in ckpt["corrupt"])) == ["ckpt-00000050.pt", "ckpt-00000055.pt"], ckpt
    assert "ckpt-00000050.pt" in proc.stdout and "skipped on restore" in proc.stdout
    for node in cluster["nodes"]:
        files = checkpoint_files(node)
        assert "ckpt-00000055.pt" not in files and not [f for f in files if ".tmp" in f], (node, files)
    # the job's own step 50 replaced the corrupt object
    body = client.get_object(Bucket=BUCKET, Key="%s/ckpt-00000050.pt" % PREFIX)
    assert body["Metadata"].get("sha256") == hashlib.sha256(body["Body"].read()).hexdigest()
