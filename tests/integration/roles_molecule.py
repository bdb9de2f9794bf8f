"""Run a role's Molecule scenario (create -> converge -> idempotence -> verify -> destroy) on local nodes.

The scenario's nodes live in a cluster of this run's own (AIINFRA_MOLECULE_CLUSTER, read by
tests/molecule/create.yml and destroy.yml); it is removed afterwards even when Molecule fails or
times out, and the caller can check nothing carrying its id is left.
"""

from __future__ import annotations

import os
import re
import subprocess

from conftest import ROOT, VENV_BIN, ansible_env, cluster_leftovers, destroy_cluster, local_name

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class MoleculeRun(object):
    def __init__(self, returncode, output, cluster, leftovers):
        self.returncode = returncode
        self.output = output
        self.cluster = cluster
        self.leftovers = leftovers

    def step_ok(self, step):
        return re.search(r"default > %s\]? Executed: Successful" % step, self.output) is not None

    def recaps(self, step):
        """PLAY RECAP lines ({host: changed}) printed by one Molecule step."""
        start = self.output.find("default > %s]" % step)
        start = self.output.find("default > %s" % step) if start < 0 else start
        end = self.output.find("Executed", start)
        chunk = self.output[start:end]
        return dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\s*(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", chunk, re.M))


def run_molecule(role, tmp_path, timeout=900):
    cluster = local_name("mol-" + role.replace("_", "-"))
    env = ansible_env({
        "AIINFRA_MOLECULE_CLUSTER": cluster,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    })
    env.pop("ANSIBLE_CONFIG", None)  # Molecule writes its own
    output, code = "", None
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test"], cwd=os.path.join(ROOT, "roles", role), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        output, code = ANSI.sub("", proc.stdout), proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = ANSI.sub("", exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""))
        output += "\n(molecule ran past %ss)" % timeout
    finally:
        leftovers = cluster_leftovers(cluster)
        destroy_cluster(cluster)
    return MoleculeRun(code, output, cluster, leftovers)


def assert_scenario_passed(run, nodes):
    tail = run.output[-6000:]
    assert run.returncode == 0, tail
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert run.step_ok(step), "molecule step %s did not succeed:\n%s" % (step, tail)
    converge = run.recaps("converge")
    idempotence = run.recaps("idempotence")
    assert sorted(h for h in converge if h != "localhost") == sorted(nodes), converge
    assert all(idempotence[n] == 0 for n in nodes), idempotence
    # the scenario's own destroy removed its nodes and network
    assert run.leftovers == [], run.leftovers
    return converge
