"""What the side-by-side cloud benchmarks (bench_aws.py, bench_gcp.py, bench_azure.py) share.

The playbooks' common parts (the play head, our firewall + instance play), one counted ansible-playbook run,
the first run and the unchanged re-run, and the table with the ours/peer ratios. Not a benchmark itself
(``make bench`` runs benchmarks/bench_*.py). Importing it puts tests/integration (the API doubles) on sys.path.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
ADMIN = "198.51.100.0/24"

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


class Run(collections.namedtuple("Run", "rc wall calls by_kind")):
    """One ansible-playbook run: exit status, wall seconds, API calls and the calls by kind."""

    __slots__ = ()

    @property
    def ok(self):
        return self.rc == 0


def play(collection, group, defaults):
    """The head of a play on localhost named after ``collection``, with ``defaults`` (option: YAML value) for the
    module group ``group``; the play's ``tasks:`` (and ``vars:``) follow."""
    lines = ["", "- name: Cluster with %s" % collection, "  hosts: localhost", "  gather_facts: false",
             "  module_defaults:", "    group/%s:" % group]
    lines += ["      %s: %s" % item for item in defaults.items()]
    return "\n".join(lines) + "\n"


def ours(defaults, nodes, firewall=None):
    """Our play: aiinfra.gpu_cluster.firewall (SSH from ``{{ admin }}``, plus ``firewall`` options) +
    aiinfra.gpu_cluster.instance with ``nodes`` (option: YAML value), both for ``{{ cluster }}``, the cloud's
    ``defaults`` for the module group."""
    return play("aiinfra.gpu_cluster", "aiinfra.gpu_cluster.cloud", defaults) + """  tasks:
    - name: Firewall
      aiinfra.gpu_cluster.firewall:
        cluster: "{{ cluster }}"
        admin_cidrs: ["{{ admin }}"]
""" + "".join("        %s: %s\n" % item for item in (firewall or {}).items()) + """    - name: Nodes
      aiinfra.gpu_cluster.instance:
        cluster: "{{ cluster }}"
""" + "".join("        %s: %s\n" % item for item in nodes.items())


def environment(python=None, **extra):
    """The environment for ansible-playbook: this one, the checkout's ansible.cfg, the bin folder of ``python``
    (default this venv's) first on PATH, no GPU_CLUSTER_NAME; plus ``extra``."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               PATH=os.path.dirname(python or sys.executable) + os.pathsep + os.environ.get("PATH", ""), **extra)
    env.pop("GPU_CLUSTER_NAME", None)
    return env


def pubkey():
    """The checkout's SSH public key (made by make setup)."""
    with open(os.path.join(ROOT, ".ssh", "id_ed25519.pub")) as handle:
        return handle.read().strip()


def write_playbook(folder, side, text):
    """``text`` as ``folder``/<side>.yml; its path."""
    path = os.path.join(folder, "%s.yml" % side.replace(".", "_"))
    with open(path, "w") as handle:
        handle.write(text)
    return path


def cluster_name(ours_side):
    """A fresh cluster name: bench-ours-xxxxxx for our side, bench-peer-xxxxxx for the peer's."""
    return "bench-%s-%s" % ("ours" if ours_side else "peer", uuid.uuid4().hex[:6])


def run(playbook, variables, env, counter, python=None, timeout=None):
    """``playbook`` with ansible-playbook (the one beside ``python``, default this venv's) on localhost, with
    ``variables`` as extra vars. ``counter`` is a pair of callables: one resets the API double's count, the other
    returns (calls, calls by kind) since. A Run; a failed run's last output lines are printed."""
    reset, count = counter
    reset()
    start = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(python or sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", playbook, "-e", json.dumps(variables)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    calls, by_kind = count()
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
    return Run(proc.returncode, wall, calls, by_kind)


def first_and_rerun(playbook, variables, env, counter, python=None, timeout=None):
    """The first run and, where it passed, the unchanged re-run: [Run, Run or None]."""
    first = run(playbook, variables, env, counter, python, timeout)
    return [first, run(playbook, variables, env, counter, python, timeout) if first.ok else None]


def measure(playbook, variables, env, counter):
    """The first run and the unchanged re-run, both passed, or SystemExit: [Run, Run]."""
    runs = first_and_rerun(playbook, variables, env, counter)
    for one in runs:  # a re-run is None only after a failed first run
        if not one.ok:
            raise SystemExit("%s failed (rc=%d)" % (playbook, one.rc))
    return runs


def print_table(title, results, aims=("", ""), detail=("ours",), detail_label="calls"):
    """The side-by-side table: ``results`` maps side -> (first Run, re-run Run, nodes), ours first and the peer
    second. Then the ratios ours/peer (``aims`` appended to the first-run and the re-run line), and the calls by
    kind of the sides in ``detail``."""
    width = max(len(side) for side in results) + 2
    print(title)
    print("%-*s %10s %8s %10s %8s %7s" % (width, "", "first (s)", "calls", "re-run (s)", "calls", "nodes"))
    for side, (first, again, nodes) in results.items():
        print("%-*s %10.2f %8d %10.2f %8d %7d" % (width, side, first.wall, first.calls, again.wall, again.calls, nodes))
    (ours_first, ours_again, _n), (peer_first, peer_again, _n) = results.values()
    print("ratio ours/peer: first run  wall %.2fx  calls %.2fx%s"
          % (ours_first.wall / peer_first.wall, float(ours_first.calls) / peer_first.calls, aims[0]))
    print("                 re-run     wall %.2fx  calls %.2fx%s"
          % (ours_again.wall / peer_again.wall, float(ours_again.calls) / peer_again.calls, aims[1]))
    labels = [("%s, %s %s:" % (side, label, detail_label), res.by_kind) for side in detail
              for label, res in (("first run", results[side][0]), ("re-run", results[side][1]))]
    pad = max(len(label) for label, _by_kind in labels)
    for label, by_kind in labels:
        print("%-*s %s" % (pad, label, json.dumps(by_kind, sort_keys=True)))
