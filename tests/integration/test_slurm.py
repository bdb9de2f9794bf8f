"""The slurm role on 3 real local nodes (marker slurm, make test-slurm; not in make test): slurm.yml then sinfo
shows 3 idle nodes and a re-run changes nothing; accounting answers; the munge key is the same 0400 file everywhere
and never printed; the Slurm ports answer the cluster's nodes only; a user from slurm_users submits a 3-node sbatch
job over SSH; two jobs that each need the whole cluster queue (the second pending) and both complete, listed by
sacct with their users and elapsed times; the queue metrics and a drained node reach the text-file collector; adding
a fourth node keeps a running job, draining it waits for its job, removing it too; bad input fails before anything
changes.

One cluster for the module, removed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time

import pytest

from conftest import destroy_cluster, inventory_list, local_name, podman, run_playbook, write_inventory

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
