"""The lowest ansible-core meta/runtime.yml claims, for real: provision 2 local nodes, the pytorch role, and one
train in which a node is stopped mid-run, all with the ansible-playbook of .venv-lowest. The watch must name the
stopped node, and only that one (on 2.16 before the core_compat adapter, every node was declared lost). The same
train uploads its run directory to a moto S3 server (torchrun_report_uri), failed as it is.

Every playbook here is .venv-lowest's ansible-playbook (``make setup-lowest``), run from CI's one integration session
beside the other files (tests/run.sh); the first test fails when that ansible-playbook is missing or is not the
lowest ansible-core claimed, so a wrong virtualenv cannot pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from s3_server import S3Server
from conftest import LOWEST_BIN, ROOT, ansible_env, destroy_cluster, events, podman, run_playbook, unique_name, \
    write_inventory

pytestmark = [pytest.mark.lowest, pytest.mark.slow]
PLAYBOOK = os.path.join(LOWEST_BIN, "ansible-playbook")


def lowest_claimed():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        claim = yaml.safe_load(handle)["requires_ansible"]
    low = [part.strip()[2:] for part in claim.split(",") if part.strip().startswith(">=")]
    assert len(low) == 1, claim
    return tuple(int(p) for p in low[0].split(".")[:2])


def playbook_core():
    assert os.path.exists(PLAYBOOK), "no %s: run make setup-lowest" % PLAYBOOK
    out = subprocess.run([PLAYBOOK, "--version"], capture_output=True, text=True, env=ansible_env(bin_dir=LOWEST_BIN),
                         check=True).stdout
    version = out.split("[core ", 1)[1].split("]", 1)[0]
    return tuple(int(p) for p in version.split(".")[:2]), version


def test_runs_on_the_lowest_ansible_core_claimed():
    (version, text) = playbook_core()
    assert version == lowest_claimed(), "ansible-playbook is ansible-core %s, not the lowest claimed" % text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    name = unique_name("low")
    tmp = tmp_path_factory.mktemp("lowest")
    try:
        inventory = write_inventory(tmp, name, 2)
        run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900, bin_dir=LOWEST_BIN)
        run_playbook("tests/integration/playbooks/pytorch_nodes.yml", inventory=inventory, timeout=1500,
                     bin_dir=LOWEST_BIN)
        yield {"name": name, "inventory": inventory, "nodes": ["%s-%d" % (name, r) for r in range(2)]}
    finally:
        destroy_cluster(name)


def node_steps(node, run_id):
    out = podman("exec", node, "sh", "-c", "cat /var/lib/aiinfra/torchrun/runs/%s/torchrun.log 2>/dev/null" % run_id,
                 check=False).stdout
    return [e["step"] for e in events(out, "step")]


def test_a_node_stopped_mid_run_is_named_as_the_cause(cluster, tmp_path):
    nodes = cluster["nodes"]
    params = {"torchrun_runs_dir": str(tmp_path / "runs"), "torchrun_run_id": "low", "torchrun_progress_interval": 5,
              "torchrun_job_name": "low", "torchrun_cpu_nproc_per_node": 1,
              "torchrun_script_args": ["--steps", "3000", "--min-step-time", "0.05"]}
    output = tmp_path / "train.out"
    s3 = S3Server(host="127.0.0.1").start()
    s3.client().create_bucket(Bucket="reports")
    params.update(torchrun_report_uri="s3://reports/low", gpu_cluster_storage_options=s3.options())
    with open(output, "w") as log:
        proc = subprocess.Popen([PLAYBOOK, "playbooks/train.yml", "-i", cluster["inventory"], "-e", json.dumps(params)],
                                cwd=ROOT, env=ansible_env(bin_dir=LOWEST_BIN),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not [s for s in node_steps(nodes[0], "low") if s >= 30]:
            assert proc.poll() is None, "train.yml ended before step 30:\n%s" % output.read_text()[-4000:]
            assert time.time() < deadline, "no step 30 in 300s:\n%s" % output.read_text()[-4000:]
            time.sleep(1)
        podman("stop", nodes[1])
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        podman("start", nodes[1], check=False)
        stored = [o["Key"] for o in s3.client().list_objects_v2(Bucket="reports", Prefix="low/low/").get("Contents", [])]
        s3.stop()
    out = output.read_text()
    assert rc != 0, out[-4000:]
    assert "_resolve_option_variables" not in out and "is not a version aiinfra.gpu_cluster knows" not in out
    summary = json.loads((tmp_path / "runs" / "low" / "summary.json").read_text())
    assert summary["status"] == "failed", summary
    # the stopped node is the cause, named first; the survivor may follow it (its workers failed a moment later,
    # "connection closed by peer") or still be running when the verdict came, depending on timing
    assert summary["failed_nodes"] in ([nodes[1]], [nodes[1], nodes[0]]), (summary["message"], summary["nodes"])
    # how the stopped node ended, as far as the poller saw it: its unit gone with the container, stopped by its
    # node's shutdown (the poll caught the exit record systemd wrote on the way down), or no answer any more (ssh:
    # no route to host) - never a failure of its own ("torchrun ended with exit code 1")
    assert summary["message"].startswith("%s (node rank 1) failed: " % nodes[1]), summary["message"]
    assert any(cause in summary["message"].split(". Also failed")[0] for cause in (
        "its torchrun unit vanished", "its node shut down while the job ran", "stopped answering")), summary["message"]
    assert summary["report_uri"] == "s3://reports/low/low/", summary
    # the whole run directory reached the bucket: every file the report left there (the survivor's log is its fetched
    # torchrun.log, or torchrun.partial.log - what the poller saw - when stopping it outlasted its task timeout)
    run_dir = tmp_path / "runs" / "low"
    local = set("low/low/" + str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                if p.is_file() and not p.name.startswith(".aiinfra-"))  # the upload's own manifest stays behind
    assert {"low/low/summary.json", "low/low/summary.txt"} <= local <= set(stored), (sorted(local), stored)
    assert {"low/low/%s/torchrun.log" % nodes[0], "low/low/%s/torchrun.partial.log" % nodes[0]} & set(stored), stored
    # the watch polled the survivor all along: its progress lines carried steps
    assert "| step " in out, out[-4000:]
