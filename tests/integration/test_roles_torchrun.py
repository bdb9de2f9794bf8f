"""roles/torchrun through Molecule (roles/torchrun/molecule/default): converge, idempotence, verify on a local node."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


# torch installed on the node first (prepare: the pytorch role): 1 min 55 s at load ~11, 15 min at load ~20; not in
# make test (its budget); make test-molecule and make test-scale run it
@pytest.mark.scale
def test_torchrun_role_molecule(tmp_path):
    run = run_molecule("torchrun", tmp_path, timeout=1800)
    converge = assert_scenario_passed(run, ["torchrun-node"])
    assert converge["torchrun-node"] > 0
