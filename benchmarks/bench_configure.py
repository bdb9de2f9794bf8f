#!/usr/bin/env python
"""Re-running playbooks/configure.yml when nothing needs to change, on 1 and on 4 local nodes.

The fan-out must be parallel: the 4-node re-run should take about as long as the 1-node one (ratio
close to 1). The floor is `ansible -m ping` over the same nodes (connection + one module round trip).

Makes its own cluster of 4 nodes, configures them once (the install run, timed too), then alternates
the measurements for BENCH_ROUNDS rounds (default 3) and prints every run, the medians and the ratio.
Prints; does not assert. Needs: make setup, podman. Removes its cluster at the end, pass or fail.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from conftest import VENV_BIN, ansible_env, destroy_cluster, run_playbook, write_inventory  # noqa: E402

NODES = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def changed_by_host(output):
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group(1), (int(m.group(2)), int(m.group(3)) + int(m.group(4)))) for m in RECAP.finditer(tail))


def timed(func):
    started = time.monotonic()
    result = func()
    return time.monotonic() - started, result


def configure(inventory, limit):
    proc = run_playbook("playbooks/configure.yml", "--limit", limit, inventory=inventory)
    counts = changed_by_host(proc.stdout)
    nodes = dict((h, c) for h, c in counts.items() if h != "localhost")
    if any(c != (0, 0) for c in nodes.values()):
        print("  warning: the re-run was not a no-op: %s" % nodes)
    return len(nodes)


def ping(inventory, limit):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), limit, "-i", inventory, "-m", "ansible.builtin.ping"],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("ansible -m ping failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    return proc.stdout.count("SUCCESS")


def main():
    cluster = "bench-cfg-%s" % uuid.uuid4().hex[:6]
    tmp = tempfile.mkdtemp(prefix="bench-configure-")
    from pathlib import Path
    inventory = write_inventory(Path(tmp), cluster, size=NODES)
    one, all_nodes = cluster + "-0", "gpu_nodes"
    try:
        print("provisioning %d local nodes (cluster %s)..." % (NODES, cluster))
        run_playbook("playbooks/provision.yml", inventory=inventory)
        install = timed(lambda: run_playbook("playbooks/configure.yml", inventory=inventory))[0]
        print("first configure.yml on %d fresh nodes (installs): %.1fs" % (NODES, install))
        # warm the SSH control masters and the controller's caches once, untimed
        configure(inventory, all_nodes)
        rows = {"configure 1": [], "configure %d" % NODES: [], "ping 1": [], "ping %d" % NODES: []}
        for rnd in range(ROUNDS):
            for name, func, limit, want in (("configure 1", configure, one, 1),
                                            ("configure %d" % NODES, configure, all_nodes, NODES),
                                            ("ping 1", ping, one, 1), ("ping %d" % NODES, ping, all_nodes, NODES)):
                seconds, count = timed(lambda: func(inventory, limit))
                if count != want:
                    raise SystemExit("%s reached %d node(s), expected %d" % (name, count, want))
                rows[name].append(seconds)
                print("  round %d  %-12s %6.2fs" % (rnd + 1, name, seconds))
        med = dict((k, statistics.median(v)) for k, v in rows.items())
        print()
        print("re-run of configure.yml with nothing to change (median of %d):" % ROUNDS)
        print("  1 node:   %6.2fs   (floor, ansible -m ping: %.2fs)" % (med["configure 1"], med["ping 1"]))
        print("  %d nodes:  %6.2fs   (floor, ansible -m ping: %.2fs)" % (
            NODES, med["configure %d" % NODES], med["ping %d" % NODES]))
        print("  ratio %d/1 nodes: %.2f   (aim: close to 1; ping's ratio: %.2f)" % (
            NODES, med["configure %d" % NODES] / med["configure 1"], med["ping %d" % NODES] / med["ping 1"]))
    finally:
        destroy_cluster(cluster)


if __name__ == "__main__":
    main()
