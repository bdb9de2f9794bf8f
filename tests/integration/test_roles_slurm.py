"""roles/slurm through Molecule (roles/slurm/molecule/default): converge, idempotence, verify on two local nodes."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


# minutes (Slurm, munge and MariaDB installed on two nodes): marked slurm - make test-slurm runs it, make
# test-molecule too; not in make test
@pytest.mark.slurm
def test_slurm_role_molecule(tmp_path):
    run = run_molecule("slurm", tmp_path, timeout=1800)
    converge = assert_scenario_passed(run, ["slurm-ctl", "slurm-node"])
    assert converge["slurm-ctl"] > 0 and converge["slurm-node"] > 0
