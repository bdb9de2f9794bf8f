"""A spot node taken back mid-run, on real local nodes: the notice, the checkpoint pushed at once, the node named
preempted, replaced, and the job resumed.

On local nodes the cloud's notice is the file ``/run/aiinfra/spot-notice`` appearing on the node (what the spot
notice watcher, ``aiinfra-spot-notice.service``, polls there; on aws, gcp and azure it polls their metadata
services). The cluster is 2 nodes (the worker's shared cluster, tests/conftest.py) with the watcher installed by
provision.yml (``gpu_cluster_spot_notice: true``) and a moto S3 server for the checkpoints. The checkpoint uploader
pushes only every 600 s here, so a checkpoint in the store after the notice and before the node stops was pushed
because of the notice. Then the node's container is stopped (the cloud taking it back): the play names it
preempted, replaces it (the new node gets the watcher too) and the job resumes from that checkpoint to its last step.

The run also plays the spot fallback: the instance options say ``spot: true`` (on local a label, ``aiinfra-market``,
which instance_info reads back as the node's market) and ``gpu_cluster_spot_fallback_after`` is 1, so the preempted
rank's replacement is launched on-demand - the play says so, the new node's label says ``on_demand``, and the
report counts its hours as on-demand.

Marker ``spot`` (``make test-spot``), not in the default suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from conftest import events, podman, run_playbook
from s3_server import S3Server
from test_recover import container_id, finish, start_training, summary_of

pytestmark = pytest.mark.spot

BUCKET = "spot"
NOTICE_FILE = "/run/aiinfra/spot-notice"
RECORD = "/run/aiinfra/preempted.json"


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """2 local nodes with PyTorch and the spot notice watcher, and a moto S3 server on their network (stopped at the
    end, pass or fail). The watcher is taken off again at the end: the shared cluster goes on to other modules."""
    state = shared_cluster.take(2)
    s3 = S3Server(state["name"]).start()
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        run_playbook("playbooks/provision.yml", extra_vars={"gpu_cluster_spot_notice": "true"},
                     inventory=state["inventory"], timeout=900)
        yield dict(state, s3=s3)
    finally:
        s3.stop()
        for node in state["nodes"]:
            podman("exec", node, "sh", "-c", "systemctl disable --now aiinfra-spot-notice.service; rm -rf %s %s "
                   "/etc/systemd/system/aiinfra-spot-notice.service /usr/local/lib/aiinfra-spot-notice "
                   "/etc/aiinfra-spot-notice; systemctl daemon-reload" % (NOTICE_FILE, RECORD), check=False)


def on_node(node, command):
    return podman("exec", node, "sh", "-c", command, check=False).stdout


def checkpoint_keys(s3):
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="pre/").get("Contents") or []
    return set(item["Key"] for item in listed if re.search(r"ckpt-\d{8}\.pt$", item["Key"]))


def wait_for(what, check, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError("train.yml ended before %s:\n%s" % (what, proc.out.read_text()[-4000:]))
        time.sleep(0.5)
    raise AssertionError("never reached: %s" % what)


def step_of(key):
    return int(re.search(r"ckpt-(\d{8})\.pt$", key).group(1))


def test_a_spot_notice_pushes_the_checkpoint_names_the_node_preempted_and_the_job_resumes(cluster, tmp_path):
    nodes, s3 = cluster["nodes"], cluster["s3"]
    for node in nodes:
        assert on_node(node, "systemctl is-active aiinfra-spot-notice.service").strip() == "active", node
    ids = dict((n, container_id(n)) for n in nodes)
    rank0_log = "/var/lib/aiinfra/torchrun/runs/pre/torchrun.log"

    proc = start_training(cluster, tmp_path, "pre", {
        "torchrun_max_recoveries": "1", "gpu_cluster_recover_roles": "preflight pytorch",
        "gpu_cluster_spot_notice": "true",
        # the spot fallback after one preemption; on local, spot is the node's market label
        "gpu_cluster_instance_options": {"spot": True}, "gpu_cluster_spot_fallback_after": "1",
        "torchrun_checkpoint_uri": "s3://%s/pre" % BUCKET, "gpu_cluster_storage_options": s3.options(),
        # the uploader's rounds are 10 minutes apart: only the notice makes it push during this test
        "torchrun_checkpoint_interval": "600", "torchrun_checkpoint_stable_seconds": "1",
        "torchrun_script_args": "--steps 600 --min-step-time 0.05 --checkpoint-every 20"})
    timeline = {}
    try:
        # rank 0 (the only writer of checkpoints) has written a few; the uploader's first round was before them
        wait_for("a checkpoint of step 60 or later on rank 0", lambda: [
            e for e in events(on_node(nodes[0], "cat %s 2>/dev/null" % rank0_log), "checkpoint") if e["step"] >= 60],
            proc)
        before = checkpoint_keys(s3)
        timeline["notice"] = time.time()
        # /run/aiinfra is the watcher's (root's, made when it starts): the notice goes there as the test's root
        podman("exec", nodes[0], "sh", "-c", "echo 'taken back by test_preemption' > %s" % NOTICE_FILE)
        record = json.loads(wait_for("the watcher's record", lambda: on_node(nodes[0], "cat %s 2>/dev/null" % RECORD),
                                     proc, timeout=30))
        assert record["source"] == "local" and "taken back by test_preemption" in record["detail"]
        pushed = wait_for("a checkpoint pushed after the notice", lambda: checkpoint_keys(s3) - before, proc,
                          timeout=60)
        timeline["pushed"] = time.time()
        pushed_step = max(step_of(k) for k in pushed)
        # the cloud's warning (2 minutes on aws, 30 s on gcp and azure); then the node goes
        time.sleep(10)
        podman("stop", nodes[0])
        timeline["stopped"] = time.time()
        rc = finish(proc, 900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.out.read_text()
    assert rc == 0, out[-6000:]
    text = " ".join(out.split())

    # named preempted, not failed; the first attempt's summary says so
    assert "%s (node rank 0) failed: was preempted (spot notice from local: %s appeared: taken back by " \
           "test_preemption)" % (nodes[0], NOTICE_FILE) in text, out[-6000:]
    first, final = summary_of(tmp_path, "pre"), summary_of(tmp_path, "pre-r1")
    assert first["status"] == "failed" and first["preempted_nodes"] == [nodes[0]]
    row = [n for n in first["nodes"] if n["host"] == nodes[0]][0]
    assert row["phase"] == "preempted" and row["preempted"]["source"] == "local"
    assert [n["phase"] for n in first["nodes"] if n["host"] == nodes[1]] != ["preempted"]

    # replaced alone, and the new node watches for notices too (no notice of its own)
    assert container_id(nodes[0]) not in ("", ids[nodes[0]]) and container_id(nodes[1]) == ids[nodes[1]]
    assert on_node(nodes[0], "systemctl is-active aiinfra-spot-notice.service").strip() == "active"
    assert on_node(nodes[0], "test -e %s && echo left" % RECORD).strip() == ""

    # the spot fallback: rank 0 lost 1 spot node (fallback_after 1), so its replacement is on-demand
    assert "rank 0 (%s) was preempted 1 time: replacing it on-demand (gpu_cluster_spot_fallback_after 1)" % nodes[0] \
        in text, out[-6000:]
    assert podman("inspect", "--format", "{{index .Config.Labels \"aiinfra-market\"}}", nodes[0]).stdout.strip() \
        == "on_demand"
    assert first["attempts"][0]["preempted"] == [nodes[0]]
    assert final["attempts"][0]["recovery"]["on_demand"] == [{"host": nodes[0], "rank": 0, "preemptions": 1}]
    assert final["recoveries"][0]["on_demand"] == [nodes[0]]
    assert "replaced on-demand (spot fallback): %s" % nodes[0] in text
    # the report prices the new node as on-demand (its market, as instance_info reads it back)
    per_node = dict((n["name"], n["market"]) for n in final["cost"]["cluster"]["per_node"])
    assert per_node[nodes[0]] == "on_demand", final["cost"]

    # resumed from the checkpoint the notice pushed (or a later one the node's last push got out), to the end
    assert final["status"] == "succeeded"
    resumed = final["metrics"]["resumed_from_step"]
    assert resumed >= pushed_step and final["metrics"]["last_step"] == 600
    recovery = final["recoveries"][0]
    assert recovery["lost"] == [nodes[0]]
    timeline.update(pushed_step=pushed_step, resumed_from_step=resumed,
                    notice_to_pushed_s=round(timeline["pushed"] - timeline["notice"], 1),
                    notice_to_stopped_s=round(timeline["stopped"] - timeline["notice"], 1),
                    recovery=recovery)
    print("preemption timeline: %s" % json.dumps(timeline))
