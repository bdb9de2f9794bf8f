#!/usr/bin/env python
"""Re-running playbooks/configure.yml when nothing needs to change, on 1 and on 4 local nodes.

The fan-out must be parallel: the 4-node re-run should take about as long as the 1-node one (ratio
close to 1). The floor is `ansible -m ping` over the same nodes (connection + one module round trip).
Next to each wall time it prints the CPU seconds the run cost on the controller (ansible-playbook and
its workers/ssh) and in the nodes (their containers' cgroups): when the controller and the nodes
share few cores (local nodes), 4 nodes cost 4x the node CPU and the ratio shows that contention, not
a serial fan-out; the CPU columns tell the two apart.

Makes its own cluster of 4 nodes, configures them once (the install run, timed too), then alternates
the measurements for BENCH_ROUNDS rounds (default 3) and prints every run, the medians and the ratio.
Prints; does not assert. Needs: make setup, podman. Removes its cluster at the end, pass or fail.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from conftest import VENV_BIN, ansible_env, destroy_cluster, podman, run_playbook, write_inventory  # noqa: E402

NODES = 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def changed_by_host(output):
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group(1), (int(m.group(2)), int(m.group(3)) + int(m.group(4)))) for m in RECAP.finditer(tail))


def node_cpu(cluster):
    """CPU seconds the cluster's containers have used so far."""
    names = ["%s-%d" % (cluster, i) for i in range(NODES)]
    out = podman("stats", "--no-stream", "--format", "{{.Name}} {{.CPUNano}}", *names).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip()) / 1e9


def controller_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(func, cluster=None):
    """(wall seconds, controller CPU seconds, node CPU seconds, result) of func()."""
    nodes0 = node_cpu(cluster) if cluster else 0.0  # (podman's own CPU stays outside the window)
    cpu0 = controller_cpu()
    started = time.monotonic()
    result = func()
    wall = time.monotonic() - started
    cpu = controller_cpu() - cpu0
    return wall, cpu, (node_cpu(cluster) - nodes0) if cluster else 0.0, result


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
        rows = dict((name, []) for name in ("configure 1", "configure %d" % NODES, "ping 1", "ping %d" % NODES))
        for rnd in range(ROUNDS):
            for name, func, limit, want in (("configure 1", configure, one, 1),
                                            ("configure %d" % NODES, configure, all_nodes, NODES),
                                            ("ping 1", ping, one, 1), ("ping %d" % NODES, ping, all_nodes, NODES)):
                wall, cpu, ncpu, count = timed(lambda: func(inventory, limit), cluster)
                if count != want:
                    raise SystemExit("%s reached %d node(s), expected %d" % (name, count, want))
                rows[name].append((wall, cpu, ncpu))
                print("  round %d  %-12s %6.2fs   cpu: controller %5.1fs, nodes %5.1fs" % (rnd + 1, name, wall, cpu, ncpu))
        med = dict((k, [statistics.median(col) for col in zip(*v)]) for k, v in rows.items())
        cores = os.cpu_count() or 1
        print()
        print("re-run of configure.yml with nothing to change (median of %d; controller has %d cores):" % (ROUNDS, cores))
        for label, key, floor in (("1 node: ", "configure 1", "ping 1"),
                                  ("%d nodes:" % NODES, "configure %d" % NODES, "ping %d" % NODES)):
            wall, cpu, ncpu = med[key]
            print("  %s %6.2fs   (floor, ansible -m ping: %.2fs)   cpu: controller %.1fs + nodes %.1fs = %.1f "
                  "core-seconds" % (label, wall, med[floor][0], cpu, ncpu, cpu + ncpu))
        ratio = med["configure %d" % NODES][0] / med["configure 1"][0]
        print("  ratio %d/1 nodes: %.2f   (aim: close to 1; ping's ratio: %.2f)" % (
            NODES, ratio, med["ping %d" % NODES][0] / med["ping 1"][0]))
        busy = sum(med["configure %d" % NODES][1:]) / (med["configure %d" % NODES][0] * cores)
        print("  the 4-node re-run kept the controller's %d cores %.0f%% busy with its own work" % (cores, 100 * busy))
        print("  load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    finally:
        destroy_cluster(cluster)


if __name__ == "__main__":
    main()
