#!/usr/bin/env python
"""train.yml's launch and verdict at 8, 16 and 32 local nodes, against the floor: the same torchrun commands
started by a plain parallel ssh fan-out.

One cluster of the largest size is made once (provision + the pytorch role); each size runs on its first N
nodes (``--limit``), one process per node, the small example job, with Ansible's default forks (5), as a user
without our ansible.cfg has them. For each size, alternating, after one warm-up run of train.yml:

- time to all ranks joined: from the launcher's start until every rank printed "joined" (right after
  init_process_group returned; the nodes are local containers, so their clocks are the controller's);
- time to verdict: from the job's end (the last rank's "done") until the launcher has the outcome: train.yml
  ends (verdict, logs fetched, report written), the fan-out's ssh commands have all returned.

The launch is one parallel round (torchrun_launch) whatever the forks, so the time to all ranks joined should not
step up every 5 nodes as a per-host task batched by forks did.

Prints each run, the medians and the ratios. Prints; does not assert. Aim: ratio <= 1.2 at every size (joined and
verdict), and an overhead that grows less than linearly with the node count.
Needs: make setup, podman, and for 32 nodes fs.inotify.max_user_instances above the default 128 (the local cloud
says so and names the sysctl). BENCH_SIZES (default 8,16,32), BENCH_ROUNDS (default 2); the cluster's name starts
with AIINFRA_TEST_CLUSTER_PREFIX when that is set. Makes its own cluster and removes it; BENCH_KEEP=1 keeps it (its
name is printed) and BENCH_CLUSTER=<name> runs on such a kept cluster instead of making one.
Both sides get the same rendezvous timeout (RDZV_TIMEOUT, 600 s): on a small controller, 32 nodes' processes
importing torch at once take minutes to join.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from conftest import KEY, configured_image, destroy_cluster, inventory_list, run_playbook, write_inventory  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import build_command  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import plan  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "8,16,32").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
STEPS = "5"
RDZV_TIMEOUT = 600
BASE = "/var/lib/aiinfra/torchrun"
WORKDIR = BASE + "/jobs/bench"
TORCHRUN = "/opt/aiinfra/pytorch/bin/torchrun"
DEFAULT_FORKS = {"ANSIBLE_FORKS": "5"}


def events(texts, event):
    times = {}
    for text in texts:
        for line in text.splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                obj = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("event") == event:
                times[obj.get("rank", len(times))] = obj["time"]
    return times


def measure(texts, started, returned, size, what):
    joined, done = events(texts, "joined"), events(texts, "done")
    if len(joined) != size or not done:
        raise SystemExit("%s: %d of %d ranks joined, %d done" % (what, len(joined), size, len(done)))
    return max(joined.values()) - started, returned - max(done.values())


def run_train(inventory, tmp, run_id, hosts):
    started = time.time()
    proc = run_playbook("playbooks/train.yml", "--limit", ",".join(hosts), inventory=inventory, check=False,
                        timeout=900, env=DEFAULT_FORKS, extra_vars={
                            "torchrun_job_name": "bench", "torchrun_run_dir": os.path.join(tmp, "runs", run_id),
                            "torchrun_script_args": "--steps %s" % STEPS, "torchrun_plot": False,
                            "torchrun_rdzv_timeout": RDZV_TIMEOUT})
    returned = time.time()
    if proc.returncode != 0:
        text = proc.stdout[:proc.stdout.rfind("PLAY RECAP")] if "PLAY RECAP" in proc.stdout else proc.stdout
        raise SystemExit("train.yml failed:\n" + text[-12000:])
    run_dir = os.path.join(tmp, "runs", run_id)
    texts = []
    for name in hosts:
        with open(os.path.join(run_dir, name, "torchrun.log")) as handle:
            texts.append(handle.read())
    return measure(texts, started, returned, len(hosts), "train.yml")


def ssh_argv(node, command):
    return ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "%s@%s" % (node["ansible_user"], node["ansible_host"]), command]


def run_floor(nodes, run_id):
    """The same commands as the role's plan builds them, one plain ssh per node, all at once."""
    items = [{"host": n["name"], "rank": n["gpu_cluster_rank"], "address": n["gpu_cluster_private_address"]}
             for n in nodes]
    settings = {"script": "train_example.py", "module": "", "script_args": ["--steps", STEPS], "job_name": "bench",
                "nproc_per_node": "auto", "cpu_nproc_per_node": 1, "rdzv_port": 29400, "rdzv_timeout": RDZV_TIMEOUT,
                "max_restarts": 0, "timeout": 600, "stop_timeout": 15, "nnodes": "", "run_id": run_id,
                "state": "started", "workdir": WORKDIR, "checkpoint_dir": WORKDIR + "/checkpoints", "bin": TORCHRUN,
                "user": nodes[0]["ansible_user"]}
    planned = plan(items, settings, script_exists=True)
    by_host = dict((n["name"], n) for n in nodes)
    rdzv_id = "%s-%s" % (run_id, uuid.uuid4().hex[:6])  # fresh per run, the same on every node
    commands = []
    for host, spec in planned["specs"].items():
        spec = dict(spec, run_id=run_id, rdzv_id=rdzv_id, log_dir="/tmp/%s-ranks" % run_id)
        built = build_command(spec, gpu_count=0, ifname="eth0")
        log = "/tmp/%s.log" % run_id
        commands.append((by_host[host], "%s > %s 2>&1" % (built["command"], log), log))
    started = time.time()
    procs = [subprocess.Popen(ssh_argv(node, command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for node, command, log in commands]
    for proc in procs:
        proc.communicate(timeout=600)
    returned = time.time()
    texts = [subprocess.run(ssh_argv(node, "cat %s; rm -rf %s /tmp/%s-ranks" % (log, log, run_id)),
                            capture_output=True, text=True, check=False).stdout for node, command, log in commands]
    if any(p.returncode for p in procs):
        raise SystemExit("floor run failed:\n" + "\n".join(
            "\n".join(line for line in t.splitlines() if "[default" in line or "Error" in line)[-3000:] for t in texts))
    return measure(texts, started, returned, len(nodes), "floor")


def main():
    kept = os.environ.get("BENCH_CLUSTER")
    cluster = kept or "%sbench-%s" % (os.environ.get("AIINFRA_TEST_CLUSTER_PREFIX", ""), uuid.uuid4().hex[:6])
    tmp = tempfile.mkdtemp(prefix="bench-launch-")
    largest = max(SIZES)
    try:
        # the tests' configured node image when this machine has one for this checkout (tests/conftest.py): the
        # pytorch role then finds its work done; the launch and the verdict are what is measured
        image = configured_image()
        inventory = write_inventory(__import__("pathlib").Path(tmp), cluster, largest,
                                    extra={"gpu_cluster_image": image} if image else None)
        if not kept:
            print("== setting up %d local nodes (%s) with the pytorch role ..." % (largest, cluster), flush=True)
            made = time.time()
            run_playbook("playbooks/provision.yml", inventory=inventory, timeout=1800)
            run_playbook("tests/integration/playbooks/pytorch_nodes.yml", inventory=inventory, timeout=3600)
            print("   ready in %.0fs" % (time.time() - made), flush=True)
        hostvars = inventory_list(inventory)["_meta"]["hostvars"]
        nodes = sorted([dict(hostvars[name], name=name) for name in hostvars if name != "localhost"],
                       key=lambda n: int(n["gpu_cluster_rank"]))
        rows = []
        for size in SIZES:
            subset = nodes[:size]
            # train.yml first on these nodes: it syncs the script, names the nodes by rank and sets each node's job
            # firewall to admit exactly these nodes (the floor's torchrun needs that too: a firewall set for fewer
            # nodes would keep the others from the rendezvous)
            print("== warm-up: train.yml once on %d nodes" % size, flush=True)
            print("   train.yml  joined %.2fs, verdict %.2fs" % run_train(
                inventory, tmp, "warmup%d" % size, [n["name"] for n in subset]), flush=True)
            ours, floor = [], []
            for i in range(ROUNDS):
                floor.append(run_floor(subset, "floor%d-%d" % (size, i)))
                ours.append(run_train(inventory, tmp, "ours%d-%d" % (size, i), [n["name"] for n in subset]))
                print("   %2d nodes, round %d: fan-out joined %.2fs verdict %.2fs | train.yml joined %.2fs verdict "
                      "%.2fs" % (size, i + 1, floor[-1][0], floor[-1][1], ours[-1][0], ours[-1][1]), flush=True)
            rows.append((size, statistics.median(f[0] for f in floor), statistics.median(o[0] for o in ours),
                         statistics.median(f[1] for f in floor), statistics.median(o[1] for o in ours)))
        print()
        print("train.yml (forks 5) vs a parallel ssh fan-out of the same torchrun commands, 1 process per node, "
              "median of %d:" % ROUNDS)
        print("%5s | %-32s | %-32s" % ("nodes", "all ranks joined (s)", "verdict after the job ended (s)"))
        print("%5s | %8s %9s %6s %6s | %8s %9s %6s %6s" % (
            "", "floor", "train.yml", "ratio", "extra", "floor", "train.yml", "ratio", "extra"))
        for size, fj, oj, fv, ov in rows:
            print("%5d | %8.2f %9.2f %6.2f %6.2f | %8.2f %9.2f %6.2f %6.2f" % (
                size, fj, oj, oj / fj, oj - fj, fv, ov, ov / fv if fv > 0 else float("nan"), ov - fv))
        print("(aim: ratios <= 1.2 at every size; 'extra' = train.yml - floor, should grow less than linearly)")
    finally:
        if os.environ.get("BENCH_KEEP") or kept:
            print("kept cluster %s (BENCH_CLUSTER=%s to run on it again; playbooks/teardown.yml removes it)"
                  % (cluster, cluster))
        else:
            destroy_cluster(cluster)
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()
