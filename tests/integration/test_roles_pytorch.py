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
    assert "pytorch: torch 2.13.0+cpu works in /opt/aiinfra/pytorch: gloo process group of 2 all-reduced; no CUDA " \
        "devices" in " ".join(run.output.split()), run.output[-3000:]
