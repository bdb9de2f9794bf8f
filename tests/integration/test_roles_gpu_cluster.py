"""roles/gpu_cluster through Molecule: main (settings, a key pair made), add_nodes (the scenario's node logged into
with what it sets), lost_nodes (none lost) - converge, idempotence, verify."""

from __future__ import annotations

import pytest

from roles_molecule import run_molecule


@pytest.mark.slow
def test_gpu_cluster_role_molecule(tmp_path):
    run = run_molecule("gpu_cluster", tmp_path)
    tail = run.output[-6000:]
    assert run.returncode == 0, tail
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert run.step_ok(step), "molecule step %s did not succeed:\n%s" % (step, tail)
    converge, idempotence = run.recaps("converge"), run.recaps("idempotence")
    # the role runs on the controller, then add_nodes puts the cluster's node into gpu_nodes under its cloud name
    nodes = [h for h in converge if h != "localhost"]
    assert len(nodes) == 1 and nodes[0].startswith(run.cluster), converge
    assert converge["localhost"] > 0, converge  # the key pair was made
    assert all(changed == 0 for changed in idempotence.values()) and set(idempotence) == set(converge), idempotence
    assert "Make the key pair" in run.output
    assert run.leftovers == [], run.leftovers
