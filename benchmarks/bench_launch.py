#!/usr/bin/env python
"""Launch overhead of train.yml on 4 local nodes, against the floor: the same torchrun commands started
by a plain parallel ssh fan-out.

Measured from the moment the launcher starts (ansible-playbook train.yml, or the ssh fan-out) until
every rank of the job has joined the process group (the "joined" line each rank of the example job
prints right after init_process_group returns; node clocks are the controller's clock, the nodes
being local containers). Both sides run the same job (the example, a few steps) with the same
torchrun command lines, built by the role's own command builder; they alternate, after one warm-up
run of train.yml (which also syncs the script and names the nodes by rank).

Prints each run, the medians and the ratio. Prints; does not assert. Aim: ratio <= 1.3.
Needs: make setup, podman. Makes its own cluster (4 nodes + the pytorch role) and removes it.
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

from conftest import KEY, ansible_env, destroy_cluster, inventory_list, run_playbook, write_inventory  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (  # noqa: E402
    build_command, layout)

NODES = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
STEPS = "5"
BASE = "/var/lib/aiinfra/torchrun"
WORKDIR = BASE + "/jobs/bench"
TORCHRUN = "/opt/aiinfra/pytorch/bin/torchrun"


def joined_times(texts):
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
            if isinstance(obj, dict) and obj.get("event") == "joined":
                times[obj["rank"]] = obj["time"]
    return times


def ssh(node, command, **kw):
    return subprocess.run(
        ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "%s@%s" % (node["ansible_user"], node["ansible_host"]), command],
        capture_output=True, text=True, check=False, **kw)


def run_train(inventory, tmp, run_id):
    started = time.time()
    # a fresh run id, as people run it (a given run id first looks for an earlier run on every node)
    proc = run_playbook("playbooks/train.yml", inventory=inventory, check=False, timeout=900, extra_vars={
        "torchrun_job_name": "bench", "torchrun_run_dir": os.path.join(tmp, "runs", run_id),
        "torchrun_script_args": ["--steps", STEPS], "torchrun_plot": False})
    if proc.returncode != 0:
        raise SystemExit("train.yml failed:\n" + proc.stdout[-4000:])
    run_dir = os.path.join(tmp, "runs", run_id)
    texts = []
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name, "torchrun.log")
        if os.path.exists(path):
            with open(path) as handle:
                texts.append(handle.read())
    times = joined_times(texts)
    if len(times) != NODES:
        raise SystemExit("train.yml: %d of %d ranks joined" % (len(times), NODES))
    return max(times.values()) - started


def run_floor(nodes, run_id):
    """The same commands, one plain ssh per node, all at once."""
    order = layout([{"host": n["name"], "rank": n["gpu_cluster_rank"], "address": n["gpu_cluster_private_address"]}
                    for n in nodes])
    by_host = dict((n["name"], n) for n in nodes)
    commands = []
    rdzv_id = "%s-%s" % (run_id, uuid.uuid4().hex[:6])  # fresh per run, the same on every node
    for item in order:
        spec = {"run_id": run_id, "job_name": "bench", "workdir": WORKDIR, "checkpoint_dir": WORKDIR + "/checkpoints",
                "torchrun": TORCHRUN, "script": WORKDIR + "/train_example.py", "script_args": ["--steps", STEPS],
                "nnodes": str(len(order)), "node_rank": item["node_rank"], "nproc_per_node": "auto",
                "cpu_nproc_per_node": 1, "rdzv_host": order[0]["address"], "rdzv_port": 29400,
                "rdzv_id": rdzv_id, "rdzv_is_host": item["node_rank"] == 0,
                "rdzv_timeout": 180, "local_addr": item["rank_host"], "max_restarts": 0, "env": {},
                "log_dir": "/tmp/%s-ranks" % run_id}
        built = build_command(spec, gpu_count=0, ifname="eth0")
        log = "/tmp/%s.log" % run_id
        commands.append((by_host[item["host"]], "%s > %s 2>&1" % (built["command"], log), log))
    started = time.time()
    procs = [subprocess.Popen(
        ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "%s@%s" % (node["ansible_user"], node["ansible_host"]), command],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for node, command, log in commands]
    for proc in procs:
        proc.communicate(timeout=600)
    texts = [ssh(node, "cat %s; rm -f %s" % (log, log)).stdout for node, command, log in commands]
    times = joined_times(texts)
    if len(times) != NODES or any(p.returncode for p in procs):
        raise SystemExit("floor run failed:\n" + "\n".join(t[-2000:] for t in texts))
    return max(times.values()) - started


def main():
    cluster = "bench-%s" % uuid.uuid4().hex[:6]
    tmp = tempfile.mkdtemp(prefix="bench-launch-")
    os.environ.update(dict((k, v) for k, v in ansible_env().items() if k.startswith("ANSIBLE")))
    try:
        print("== setting up %d local nodes (%s) with the pytorch role ..." % (NODES, cluster), flush=True)
        made = time.time()
        inventory = write_inventory(__import__("pathlib").Path(tmp), cluster, NODES)
        run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
        run_playbook("tests/integration/playbooks/pytorch_nodes.yml", inventory=inventory, timeout=1800)
        print("   ready in %.0fs" % (time.time() - made), flush=True)
        hostvars = inventory_list(inventory)["_meta"]["hostvars"]
        nodes = [dict(hostvars[name], name=name) for name in sorted(hostvars) if name != "localhost"]
        print("== warm-up: train.yml once (syncs the script, names the nodes by rank)", flush=True)
        print("   train.yml  %.2fs" % run_train(inventory, tmp, "warmup"), flush=True)
        ours, floor = [], []
        for i in range(ROUNDS):
            floor.append(run_floor(nodes, "floor%d" % i))
            ours.append(run_train(inventory, tmp, "ours%d" % i))
            print("   round %d: ssh fan-out %.2fs   train.yml %.2fs" % (i + 1, floor[-1], ours[-1]), flush=True)
        f, o = statistics.median(floor), statistics.median(ours)
        print()
        print("launch until every rank joined, %d nodes x 1 process, median of %d:" % (NODES, ROUNDS))
        print("  floor (parallel ssh, same torchrun commands): %6.2fs" % f)
        print("  ansible-playbook playbooks/train.yml:          %6.2fs" % o)
        print("  ratio train.yml / floor:                       %6.2f   (aim <= 1.3)" % (o / f))
    finally:
        destroy_cluster(cluster)
        subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()
