"""The slurm role on 3 real local nodes (marker slurm, make test-slurm; not in make test): slurm.yml then sinfo
shows 3 idle nodes and a re-run changes nothing; accounting answers; the munge key is the same 0400 file everywhere
and never printed; the Slurm ports answer the cluster's nodes only; a user from slurm_users submits a 3-node sbatch
job over SSH; two jobs that each need the whole cluster queue (the second pending) and both complete, listed by
sacct with their users and elapsed times; the README's sbatch script for a multi-node torchrun job runs as written
(fitted to CPU nodes); the queue metrics and a drained node reach the text-file collector; adding
a fourth node keeps a running job, draining it waits for its job, removing it too; bad input fails before anything
changes. train.yml with torchrun_launcher=slurm (the nodes get PyTorch from the pytorch role first): the 3-node
example runs to success with the direct launch's report (and the Slurm launch's overhead against the direct launch is
printed); two runs started at once queue (the second's play says it waits behind the first) and sacct lists both; a
node stopped mid-job fails the play naming it and the job is cancelled, and the node comes back to Slurm by itself
when it starts again; Ctrl-C on the play while it watches the run, or while the job waits in the queue, cancels the
job (a direct launch: stops its units); bad input fails before anything changes.

One cluster for the module, removed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import (ROOT, SHARED_CONFIGURE, VENV_BIN, ansible_env, destroy_cluster, events, inventory_list,
                      local_name, podman, run_playbook, write_inventory)

pytestmark = pytest.mark.slurm

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)",
                   re.M)
SSH = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "LogLevel=ERROR"]


def recap(output):
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group("host"), (int(m.group("changed")), int(m.group("failed")))) for m in RECAP.finditer(tail))


def sh(node, command, check=False):
    proc = podman("exec", node, "bash", "-c", command, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s on %s: rc=%s\n%s%s" % (command, node, proc.returncode, proc.stdout, proc.stderr))
    return proc


def wait_for(what, predicate, timeout=180, interval=2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def job_state(node, job_id):
    """squeue's state of a job, else sacct's (after it left the queue)."""
    out = sh(node, "squeue -h -j %s -o %%T 2>/dev/null" % job_id).stdout.strip()
    if out:
        return out
    return sh(node, "sacct -n -X -P -j %s -o State" % job_id).stdout.strip()


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    name = local_name("slurm")
    tmp = tmp_path_factory.mktemp("slurm")
    key = tmp / "alice"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    users = [{"name": "alice", "public_key": (tmp / "alice.pub").read_text().strip()}]
    inv = write_inventory(tmp, name, size=3, extra={"slurm_users": users})
    try:
        run_playbook("playbooks/provision.yml", inventory=inv)
        # PyTorch on the nodes (the training tests' node setup) for train.yml with torchrun_launcher=slurm
        run_playbook(SHARED_CONFIGURE, inventory=inv, timeout=1500)
        started = time.time()
        first = run_playbook("playbooks/slurm.yml", inventory=inv)
        yield {"name": name, "inv": inv, "tmp": tmp, "key": str(key), "first": first, "seconds": time.time() - started,
               "nodes": ["%s-%d" % (name, r) for r in range(3)]}
    finally:
        destroy_cluster(name)


def test_three_idle_nodes_and_rerun_unchanged(slurm_cluster):
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    print("slurm.yml from start to sinfo idle on 3 nodes: %.0f s" % slurm_cluster["seconds"])
    text = " ".join(slurm_cluster["first"].stdout.split())
    assert "slurmctld + slurmdbd on %s, partition main of 3 nodes" % ctl in text
    states = sh(ctl, "sinfo -h -N -o '%N %t'", check=True).stdout.split("\n")
    assert sorted(s for s in states if s) == sorted("%s idle" % n for n in nodes)
    # slurmctld and slurmdbd on rank 0 only, slurmd everywhere
    for node in nodes:
        active = dict((u, sh(node, "systemctl is-active " + u).stdout.strip()) for u in ("slurmctld", "slurmdbd", "slurmd"))
        want = "active" if node == ctl else "inactive"
        assert active == {"slurmctld": want, "slurmdbd": want, "slurmd": "active"}, (node, active)
    # one munge key, 0400 munge:munge, identical on every node, never in the play's output
    stats = [sh(n, "stat -c '%a %U:%G' /etc/munge/munge.key; sha256sum < /etc/munge/munge.key", check=True).stdout
             for n in nodes]
    assert len(set(stats)) == 1 and stats[0].startswith("400 munge:munge"), stats
    # its source, root-only on the controller node (the other nodes have none)
    assert sh(ctl, "stat -c '%a %U' /etc/aiinfra/slurm /etc/aiinfra/slurm/munge.key", check=True).stdout.split("\n")[:2] \
        == ["700 root", "600 root"]
    assert sh(nodes[1], "test -e /etc/aiinfra/slurm").returncode != 0
    key = sh(ctl, "cat /etc/munge/munge.key", check=True).stdout.strip()
    assert len(key) > 100 and key not in slurm_cluster["first"].stdout
    # accounting answers
    assert sh(ctl, "sacctmgr -n -P list cluster format=cluster", check=True).stdout.split() == \
        [slurm_cluster["name"].replace("-", "_")]
    assert sh(ctl, "sacct -a -n -X", check=True).returncode == 0
    # cgroup confinement on the local nodes (cgroup v1, writable in the container): a job's memory limit is its --mem
    limit = sh(ctl, "srun -N1 -w %s --mem=100 bash -c 'cat /sys/fs/cgroup/memory/slurm_*/uid_0/job_$SLURM_JOB_ID"
                    "/memory.limit_in_bytes'" % nodes[1], check=True).stdout.strip()
    assert limit == str(100 * 1024 * 1024)

    again = run_playbook("playbooks/slurm.yml", inventory=slurm_cluster["inv"])
    assert recap(again.stdout) == dict((n, (0, 0)) for n in nodes), \
        "\n".join(ln for ln in again.stdout.splitlines() if ln.startswith("changed"))


def test_slurm_ports_answer_the_cluster_only(slurm_cluster):
    nodes = slurm_cluster["nodes"]
    address = inventory_list(slurm_cluster["inv"])["_meta"]["hostvars"][nodes[0]]["gpu_cluster_private_address"]
    probe = "python3 -c 'import socket; socket.create_connection((\"%s\", %d), 3)'"
    assert sh(nodes[1], probe % (address, 6817)).returncode == 0
    # from outside the cluster (the controller host is on the bridge too): dropped
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(3)
        with pytest.raises(OSError):
            sock.connect((address, 6817))


def ssh_user(slurm_cluster, command, user="alice", timeout=300):
    address = inventory_list(slurm_cluster["inv"])["_meta"]["hostvars"][slurm_cluster["nodes"][0]]["ansible_host"]
    return subprocess.run(["ssh", "-i", slurm_cluster["key"]] + SSH + ["%s@%s" % (user, address), command],
                          capture_output=True, text=True, timeout=timeout, check=False)


SBATCH = """#!/bin/bash
#SBATCH --job-name=%s
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --output=%%x-%%j.out
srun bash -c 'sleep %d; echo "$SLURM_PROCID $(hostname)"'
"""


def test_user_submits_over_ssh_and_jobs_queue(slurm_cluster):
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    # the user's uid is the same on every node (Slurm runs the steps under it everywhere)
    ids = [sh(n, "id -u alice; id -g alice", check=True).stdout.split() for n in nodes]
    assert ids == [["61000", "61000"]] * 3
    proc = subprocess.run(
        ["ssh", "-i", slurm_cluster["key"]] + SSH + [
            "alice@" + inventory_list(slurm_cluster["inv"])["_meta"]["hostvars"][ctl]["ansible_host"],
            "cat > q.sh"], input=SBATCH % ("q", 8), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    # two jobs that each take the whole cluster: the second waits for the first
    sub = ssh_user(slurm_cluster, "sbatch --parsable q.sh && sbatch --parsable q.sh")
    assert sub.returncode == 0, sub.stderr
    first, second = sub.stdout.split()
    wait_for("the first job running", lambda: job_state(ctl, first) == "RUNNING", timeout=60, interval=1)
    assert job_state(ctl, second) == "PENDING"
    reason = sh(ctl, "squeue -h -j %s -o %%r" % second).stdout.strip()
    assert reason in ("Resources", "Priority"), reason
    wait_for("both jobs done", lambda: job_state(ctl, second) in ("COMPLETED", "FAILED", "CANCELLED"), timeout=180)
    rows = [r.split("|") for r in sh(ctl, "sacct -n -X -P -j %s,%s -o JobID,User,State,Elapsed,NNodes,Start,End"
                                     % (first, second), check=True).stdout.split()]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [(first, "alice", "COMPLETED", "3"),
                                                        (second, "alice", "COMPLETED", "3")], rows
    assert all(r[3] >= "00:00:08" for r in rows), rows
    assert rows[1][5] >= rows[0][6], rows  # the second started when the first had ended
    out = ssh_user(slurm_cluster, "cat q-%s.out" % first).stdout
    assert sorted(line.split()[1] for line in out.splitlines() if line.strip()) == nodes, out
    # a name Slurm's accounting does not know cannot submit (AccountingStorageEnforce=associations)
    sh(ctl, "id bob >/dev/null 2>&1 || useradd -m bob", check=True)
    refused = sh(ctl, "su bob -c 'sbatch --wrap true'")
    assert refused.returncode != 0 and "Invalid account" in refused.stderr, refused.stderr


DDP_CHECK = """import os
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
total = torch.ones(1) * (dist.get_rank() + 1)
dist.all_reduce(total)
print("rank %d of %d on %s: sum %d"
      % (dist.get_rank(), dist.get_world_size(), os.uname().nodename, int(total.item())))
dist.destroy_process_group()
"""


def readme_sbatch_script():
    """The README's sbatch script for a multi-node torchrun job (section Slurm)."""
    with open(os.path.join(ROOT, "README.md")) as handle:
        text = handle.read()
    found = re.search(r"```bash\n(#!/bin/bash\n#SBATCH --job-name=ddp\n.*?)```", text, re.S)
    assert found, "README.md has no sbatch script for a multi-node torchrun job"
    return found.group(1)


def test_the_readmes_sbatch_script_runs_a_3_node_torchrun_job(slurm_cluster):
    """The README's multi-node torchrun script, submitted by a user over SSH as written there - made fit for CPU
    nodes (no --gpus-per-node, one process a node) - runs one torchrun per node that rendezvous: 3 ranks, and an
    all-reduce over them."""
    script = readme_sbatch_script()
    assert "--gpus-per-node=8" in script and "--nproc-per-node=8" in script
    cpu = "\n".join(line for line in script.splitlines() if "--gpus-per-node" not in line) + "\n"
    cpu = cpu.replace("--nproc-per-node=8", "--nproc-per-node=1")
    for name, text in (("ddp.sh", cpu), ("train.py", DDP_CHECK)):
        put = subprocess.run(["ssh", "-i", slurm_cluster["key"]] + SSH + [
            "alice@" + inventory_list(slurm_cluster["inv"])["_meta"]["hostvars"][slurm_cluster["nodes"][0]]
            ["ansible_host"], "cat > %s" % name], input=text, capture_output=True, text=True, timeout=60, check=False)
        assert put.returncode == 0, put.stderr
    sub = ssh_user(slurm_cluster, "sbatch --parsable ddp.sh")
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip()
    ctl = slurm_cluster["nodes"][0]
    wait_for("the job done", lambda: job_state(ctl, job) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
             timeout=300, interval=3)
    out = ssh_user(slurm_cluster, "cat ddp-%s.out" % job).stdout
    assert job_state(ctl, job) == "COMPLETED", out[-3000:]
    ranks = sorted(line for line in out.splitlines() if line.startswith("rank "))
    assert [r.split(" on ")[0] for r in ranks] == ["rank %d of 3" % r for r in range(3)], out[-3000:]
    assert sorted(r.split(" on ")[1].split(":")[0] for r in ranks) == slurm_cluster["nodes"], out[-3000:]
    assert all(r.endswith(": sum 6") for r in ranks), out[-3000:]


def metrics(node):
    text = sh(node, "cat /var/lib/prometheus/node-exporter/slurm.prom", check=True).stdout
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_metrics_show_queue_and_a_drained_node(slurm_cluster):
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    sh(ctl, "scontrol update nodename=%s state=drain reason=test" % nodes[2], check=True)
    try:
        wait_for("the drained node in the metrics", lambda: metrics(ctl).get(
            'slurm_node_state{slurm_node="%s",state="drained"}' % nodes[2]) == "1", timeout=60)
        assert metrics(ctl)['slurm_nodes{state="drained"}'] == "1"
        # a 3-node job cannot start: the queue depth says so
        job = sh(ctl, "sbatch --parsable -N3 --wrap 'true'", check=True).stdout.strip()
        wait_for("queue depth 1", lambda: metrics(ctl).get("slurm_queue_depth") == "1", timeout=60)
        sh(ctl, "scancel %s" % job, check=True)
    finally:
        sh(ctl, "scontrol update nodename=%s state=resume" % nodes[2], check=True)
    wait_for("the node idle again", lambda: metrics(ctl).get('slurm_nodes{state="idle"}') == "3", timeout=60)
    assert metrics(ctl)["slurm_up"] == "1"


@pytest.mark.parametrize("extra, message", [
    ({"slurm_controller_host": "elsewhere"}, "slurm_controller_host elsewhere is not a node of gpu_nodes"),
    ({"slurm_users": [{"name": "root", "public_key": "ssh-ed25519 AAAA x"}]}, "each of slurm_users needs a name"),
    ({"slurm_drain": ["nope"]}, "slurm_drain names nodes that are not in gpu_nodes: nope"),
    ({"gpu_cluster_scheduler": "pbs"}, "gpu_cluster_scheduler must be none or slurm, not pbs"),
])
def test_bad_input_fails_before_anything_changes(slurm_cluster, extra, message):
    proc = run_playbook("playbooks/slurm.yml", "-e", json.dumps(extra),
                        inventory=slurm_cluster["inv"], check=False)
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert all(changed == 0 for changed, _failed in recap(proc.stdout).values()), proc.stdout[-3000:]


# -- train.yml with torchrun_launcher=slurm ----------------------------------------------------------------------

TRAIN = "playbooks/train.yml"
JOB = {"torchrun_cpu_nproc_per_node": 1, "torchrun_progress_interval": 5, "torchrun_plot": "yes"}


def train_vars(slurm_cluster, run_id, extra=None):
    # a job of its own per run: the example resumes from its job's checkpoints
    params = dict(JOB, torchrun_runs_dir=str(slurm_cluster["tmp"] / "runs"), torchrun_run_id=run_id,
                  torchrun_job_name=run_id, torchrun_launcher="slurm")
    params.update(extra or {})
    return params


def train(slurm_cluster, run_id, extra=None, timeout=900):
    began = time.time()
    proc = run_playbook(TRAIN, extra_vars=train_vars(slurm_cluster, run_id, extra), inventory=slurm_cluster["inv"],
                        check=False, timeout=timeout)
    return proc, summary_of(slurm_cluster, run_id), time.time() - began


def train_background(slurm_cluster, run_id, extra=None):
    out = slurm_cluster["tmp"] / ("%s.out" % run_id)
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", slurm_cluster["inv"], "-e",
           json.dumps(train_vars(slurm_cluster, run_id, extra))]
    proc = subprocess.Popen(cmd, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            env=ansible_env(), stdout=open(out, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.output_path = out
    return proc


def finish(proc, timeout=900):
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, proc.output_path.read_text()


def summary_of(slurm_cluster, run_id):
    path = slurm_cluster["tmp"] / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def slurm_jobs(ctl, run_ids):
    """sacct's record of the runs' jobs (named after the run ids), by run id."""
    out = sh(ctl, "sacct -a -n -X -P -S now-1days -o JobID,JobName,User,State,Elapsed,NNodes,Start,End",
             check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return dict((r[1], {"id": r[0], "user": r[2], "state": r[3], "elapsed": r[4], "nnodes": r[5], "start": r[6],
                        "end": r[7]}) for r in rows if r[1] in run_ids)


def node_log(node, run_id):
    return sh(node, "cat /var/lib/aiinfra/torchrun/runs/%s/torchrun.log 2>/dev/null" % run_id).stdout


RUN_PROCESSES = "pgrep -af 'torchrun|train_example|slurm_step' | grep -v -e pgrep -e '^[0-9]* srun '"


def nothing_left(nodes):
    """No process of the job (torchrun, its workers, the Slurm step's program) on the nodes; the srun of a cancelled
    job's batch script goes once Slurm's KillWait (30 s) has passed."""
    for node in nodes:
        left = sh(node, RUN_PROCESSES)
        assert not left.stdout.strip(), (node, left.stdout)
    wait_for("no srun left", lambda: all(sh(n, "pgrep -x srun").stdout.strip() == "" for n in nodes), timeout=120)


def test_train_through_slurm_succeeds_with_the_report_and_its_overhead(slurm_cluster):
    """The 3-node example through Slurm to success with the direct launch's report; then the same job launched
    directly: the Slurm launch's overhead (play wall time, and the run's own duration) is printed."""
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    args = {"torchrun_script_args": "--steps 60"}
    proc, summary, slurm_s = train(slurm_cluster, "slurm-one", args)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "torchrun run slurm-one (job slurm-one): SUCCEEDED" in proc.stdout
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0 and summary["nnodes"] == 3
    assert [r["exit_code"] for r in summary["nodes"]] == [0, 0, 0] and summary["world_size"] == 3
    assert summary["metrics"]["first_step"] == 1 and summary["metrics"]["last_step"] == 60
    assert summary["metrics"]["loss_went_down"]
    run_dir = slurm_cluster["tmp"] / "runs" / "slurm-one"
    assert (run_dir / "loss.png").exists() and (run_dir / "summary.json").exists()
    for node in nodes:
        assert events((run_dir / node / "torchrun.log").read_text(), "step"), node
        # the node ran the command the direct launch would run, recorded as the direct launch records it
        meta = json.loads(sh(node, "cat /var/lib/aiinfra/torchrun/runs/slurm-one/meta.json", check=True).stdout)
        assert meta["launcher"] == "slurm" and "/opt/aiinfra/pytorch/bin/torchrun --nnodes 3" in meta["command"]
    job = slurm_jobs(ctl, ["slurm-one"])["slurm-one"]
    assert (job["user"], job["state"], job["nnodes"]) == ("aiinfra-job", "COMPLETED", "3"), job
    # no secret or environment of the job in Slurm's record of it
    assert "AIINFRA_RUN_ID" not in sh(ctl, "scontrol show job %s 2>&1; sacct -j %s -o SubmitLine%%300 -P"
                                      % (job["id"], job["id"])).stdout
    nothing_left(nodes)

    direct, dsummary, direct_s = train(slurm_cluster, "direct-one", dict(args, torchrun_launcher="direct"))
    assert direct.returncode == 0, direct.stdout[-5000:]
    assert dsummary["status"] == "succeeded" and dsummary["metrics"]["first_step"] == 1
    assert dsummary["metrics"]["last_step"] == 60
    print("Slurm launch overhead on the 3-node example (--steps 60, 1 process a node): train.yml %.1f s with "
          "torchrun_launcher=slurm vs %.1f s direct (+%.1f s); the run itself %.1f s vs %.1f s (+%.1f s)"
          % (slurm_s, direct_s, slurm_s - direct_s, summary["duration_s"], dsummary["duration_s"],
             summary["duration_s"] - dsummary["duration_s"]))


def test_two_runs_at_once_queue_in_slurm(slurm_cluster):
    """Two train.yml runs started at once on a cluster that fits one: the second waits in the Slurm queue (its play
    says so) and runs after the first; sacct lists both with their user and elapsed time."""
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    args = {"torchrun_script_args": "--steps 100 --min-step-time 0.3"}
    first = train_background(slurm_cluster, "slurm-q1", args)
    second = train_background(slurm_cluster, "slurm-q2", args)
    (rc1, out1), (rc2, out2) = finish(first), finish(second)
    assert rc1 == 0, out1[-4000:]
    assert rc2 == 0, out2[-4000:]
    jobs = slurm_jobs(ctl, ["slurm-q1", "slurm-q2"])
    early, late = sorted(jobs, key=lambda r: int(jobs[r]["id"]))
    late_out = out2 if late == "slurm-q2" else out1
    assert re.search(r"run %s: Slurm job %s is waiting in the Slurm queue behind job %s"
                     % (late, jobs[late]["id"], jobs[early]["id"]), " ".join(late_out.split())), late_out[-4000:]
    assert "it waited" in " ".join(late_out.split())
    for run_id in (early, late):
        assert (jobs[run_id]["user"], jobs[run_id]["state"]) == ("aiinfra-job", "COMPLETED"), jobs
        assert jobs[run_id]["elapsed"] > "00:00:05", jobs
        summary = summary_of(slurm_cluster, run_id)
        assert summary["status"] == "succeeded" and summary["metrics"]["first_step"] == 1, summary["metrics"]
    assert jobs[late]["start"] >= jobs[early]["end"], jobs
    print("sacct: %s" % jobs)


def test_a_node_stopped_mid_job_fails_the_play_naming_it_and_cancels_the_job(slurm_cluster):
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    proc = train_background(slurm_cluster, "slurm-dies", {
        "torchrun_script_args": ["--steps", "3000", "--min-step-time", "0.05"]})
    try:
        wait_for("step 40 on %s" % nodes[0], lambda: proc.poll() is not None or max(
            [e["step"] for e in events(node_log(nodes[0], "slurm-dies"), "step")] + [0]) >= 40, timeout=300)
        assert proc.poll() is None, proc.output_path.read_text()[-4000:]
        address = sh(nodes[2], "hostname -I", check=True).stdout.split()[0]
        stopped_at = time.time()
        podman("stop", nodes[2])
        rc, out = finish(proc, timeout=300)
        took = time.time() - stopped_at
        assert rc != 0, out[-4000:]
        assert took <= 120, "the play took %.0fs to fail after the node stopped" % took
        summary = summary_of(slurm_cluster, "slurm-dies")
        assert summary["status"] == "failed" and summary["failed_nodes"][0] == nodes[2], summary["message"]
        assert summary["message"].startswith("%s (node rank 2) failed: " % nodes[2]), summary["message"]
        assert "%s (node rank 2)" % nodes[2] in out
        job = slurm_jobs(ctl, ["slurm-dies"])["slurm-dies"]
        assert job["state"].startswith("CANCELLED"), job
        nothing_left(nodes[:2])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        podman("start", nodes[2])

    # the node comes back to Slurm by itself: it kept its address (slurm.conf's NodeAddr, the other nodes' firewall
    # rules), its slurmd starts with it, and a node Slurm had set down returns once it registers (ReturnToService=2);
    # the partition is idle again for the tests after this one, nothing resumed by hand
    def addresses():
        return sh(nodes[2], "hostname -I").stdout.split()

    wait_for("%s running" % nodes[2], addresses, timeout=120)
    assert sh(nodes[2], "hostname -I", check=True).stdout.split()[0] == address
    came_back = time.time()

    def idle():
        states = sh(ctl, "sinfo -h -N -o '%N %t'").stdout.splitlines()
        return sorted(s for s in states if s.strip()) == sorted("%s idle" % n for n in nodes)
    try:
        wait_for("3 idle nodes", idle, timeout=300, interval=3)
    except AssertionError:
        print(sh(ctl, "sinfo -N -l; squeue; sinfo -R").stdout, sh(nodes[2], "systemctl status slurmd munge").stdout)
        raise
    print("%s idle in Slurm %.0f s after podman start" % (nodes[2], time.time() - came_back))


@pytest.mark.parametrize("launcher", ["slurm", "slurm-queued", "direct"])
def test_interrupting_the_play_stops_the_run(slurm_cluster, launcher):
    """Ctrl-C on train.yml (SIGINT to ansible-playbook's process group, as a terminal sends it) while it watches the
    run, or while the run's job still waits in the Slurm queue behind another: the play ends, and by then the run's
    Slurm job is cancelled (squeue has none left, sacct says CANCELLED) or, launched directly, its unit is stopped on
    every node."""
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    run_id = "int-%s" % launcher
    blocker = None
    if launcher == "slurm-queued":  # the whole cluster busy: the run's job waits behind this one
        blocker = sh(ctl, "sbatch --parsable -N3 --exclusive --wrap 'srun sleep 600'", check=True).stdout.strip()
        wait_for("the blocking job running", lambda: job_state(ctl, blocker) == "RUNNING", timeout=60, interval=1)
    proc = train_background(slurm_cluster, run_id, {"torchrun_launcher": launcher.split("-")[0],
                                                    "torchrun_script_args": ["--steps", "3000", "--min-step-time",
                                                                             "0.05"]})
    try:
        if blocker:
            wait_for("the run's job pending", lambda: proc.poll() is not None or sh(
                ctl, "squeue -h -n %s -o %%T" % run_id).stdout.strip() == "PENDING", timeout=300)
            time.sleep(25)  # into the wait's second slice (its first said the job still waits)
        else:
            # step 100 logged: the watch has followed the run for seconds (it starts once every node's step has)
            wait_for("step 100 on %s" % nodes[0], lambda: proc.poll() is not None or max(
                [e["step"] for e in events(node_log(nodes[0], run_id), "step")] + [0]) >= 100, timeout=300)
        assert proc.poll() is None, proc.output_path.read_text()[-4000:]
        os.killpg(proc.pid, signal.SIGINT)
        interrupted_at = time.time()
        rc, out = finish(proc, timeout=180)
        took = time.time() - interrupted_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if blocker:
            sh(ctl, "scancel %s" % blocker)
    assert rc != 0 and "User interrupted execution" in out, out[-3000:]
    print("%s: the play ended %.1f s after Ctrl-C" % (launcher, took))
    if launcher.startswith("slurm"):
        job = slurm_jobs(ctl, [run_id])[run_id]
        assert job["state"].startswith("CANCELLED"), job  # scancel-led before the play ended
        wait_for("the job gone from squeue", lambda: sh(ctl, "squeue -h -n %s" % run_id).stdout.strip() == "",
                 timeout=120)
    if blocker:
        assert "still waits in the Slurm queue" in out, out[-3000:]
    for node in nodes:  # a direct launch's unit: stopping (its stop timeout on the node), then stopped
        wait_for("the run's unit stopped on %s" % node, lambda node=node: sh(
            node, "systemctl is-active aiinfra-torchrun-%s.service" % run_id).stdout.strip() in ("inactive", "failed"),
            timeout=120)
    # the run's processes end within Slurm's KillWait (30 s) or the unit's stop timeout, not at once
    wait_for("the run's processes gone", lambda: all(not sh(n, RUN_PROCESSES).stdout.strip() for n in nodes),
             timeout=120, interval=3)
    nothing_left(nodes)
    # the partition is free again for the tests after this one
    wait_for("3 idle nodes", lambda: sorted(s for s in sh(ctl, "sinfo -h -N -o '%N %t'").stdout.split("\n") if s)
             == sorted("%s idle" % n for n in nodes), timeout=120)


@pytest.mark.parametrize("extra, message", [
    ({"torchrun_launcher": "pbs"}, "torchrun_launcher must be direct or slurm (got 'pbs')"),
    ({"torchrun_docker_image": "img:1"}, "torchrun_launcher=slurm does not run torchrun_docker_image jobs yet"),
    ({"slurmctld": "stopped"}, "torchrun_launcher=slurm needs Slurm on the cluster (the slurm role: "
                               "playbooks/slurm.yml, or site.yml with gpu_cluster_scheduler: slurm): slurmctld does "
                               "not answer"),
])
def test_train_bad_input_fails_before_anything_changes(slurm_cluster, extra, message):
    ctl = slurm_cluster["nodes"][0]
    stop = extra.pop("slurmctld", None)
    if stop:
        sh(ctl, "systemctl stop slurmctld", check=True)
    try:
        proc, summary, took = train(slurm_cluster, "slurm-bad", extra)
    finally:
        if stop:
            sh(ctl, "systemctl start slurmctld", check=True)
            wait_for("slurmctld up", lambda: "UP" in sh(ctl, "scontrol ping").stdout, timeout=120)
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert all(changed == 0 for changed, _failed in recap(proc.stdout).values()), proc.stdout[-3000:]
    assert summary is None
    for node in slurm_cluster["nodes"]:
        assert sh(node, "test -e /var/lib/aiinfra/torchrun/runs/slurm-bad").returncode != 0


def test_a_node_joins_and_leaves_without_stopping_a_running_job(slurm_cluster):
    """Scale 3 -> 4: the new node is in the partition, a job started before runs on. Then slurm_drain: the node takes
    no new job and the play waits for its job to end; scale 4 -> 3: slurm.conf leaves it out, the job still runs."""
    nodes = slurm_cluster["nodes"]
    ctl = nodes[0]
    users = {"slurm_users": [{"name": "alice", "public_key": (slurm_cluster["tmp"] / "alice.pub").read_text().strip()}]}
    job = sh(ctl, "sbatch --parsable -N2 -w %s,%s --wrap 'srun sleep 900'" % (nodes[1], nodes[2]), check=True).stdout
    job = job.strip()
    wait_for("the job running", lambda: job_state(ctl, job) == "RUNNING", timeout=60, interval=1)
    inv4 = write_inventory(slurm_cluster["tmp"], slurm_cluster["name"], size=4, extra=users)
    run_playbook("playbooks/provision.yml", inventory=inv4)
    run_playbook("playbooks/slurm.yml", inventory=inv4)
    new = "%s-3" % slurm_cluster["name"]
    wait_for("4 nodes in the partition", lambda: len(sh(ctl, "sinfo -h -N -p main -o %N").stdout.split()) == 4,
             timeout=60)
    # the job started before the node was added still runs (slurmctld and slurmd restarted under it)
    assert job_state(ctl, job) == "RUNNING"
    assert sh(ctl, "srun -N1 -w %s hostname" % new, check=True).stdout.strip() == new

    # drain before removing: the play returns once the node's job has ended, the node takes nothing new
    short = sh(ctl, "sbatch --parsable -N1 -w %s --wrap 'sleep 25'" % new, check=True).stdout.strip()
    wait_for("the short job running", lambda: job_state(ctl, short) == "RUNNING", timeout=60, interval=1)
    run_playbook("playbooks/slurm.yml", "-e", json.dumps({"slurm_drain": [new]}), inventory=inv4)
    assert job_state(ctl, short) == "COMPLETED"
    assert sh(ctl, "sinfo -h -N -n %s -o %%t" % new).stdout.strip() == "drain"
    assert sh(ctl, "sinfo -h -R -o %%E -n %s" % new).stdout.strip() == "removed by aiinfra.gpu_cluster.slurm"

    inv3 = write_inventory(slurm_cluster["tmp"], slurm_cluster["name"], size=3, extra=users)
    run_playbook("playbooks/provision.yml", inventory=inv3)
    run_playbook("playbooks/slurm.yml", inventory=inv3)
    assert sorted(sh(ctl, "sinfo -h -N -p main -o %N").stdout.split()) == nodes
    assert job_state(ctl, job) == "RUNNING"
    sh(ctl, "scancel %s" % job, check=True)
    wait_for("the job cancelled", lambda: job_state(ctl, job).startswith("CANCELLED"), timeout=60)
