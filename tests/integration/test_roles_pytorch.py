"""roles/pytorch through Molecule on a local node: wheelhouse built on the controller and staged,
torch imports, a gloo group of 2 (role) and a 2-process torchrun job (verify); second run 0 changed."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


@pytest.mark.slow
def test_pytorch_role_molecule(tmp_path):
    run = run_molecule("pytorch", tmp_path)
    converge = assert_scenario_passed(run, ["pytorch-node"])
    assert converge["pytorch-node"] > 0
    assert '"torch": "2.13.0+cpu"' in run.output and '"gloo_world_size": 2' in run.output
