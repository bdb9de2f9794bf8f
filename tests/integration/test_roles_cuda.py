"""roles/cuda through Molecule: CUDA 11.8's runtime from Debian non-free, checked against nothing
(no driver planned), found by the loader; second run 0 changed."""

from __future__ import annotations

from roles_molecule import assert_scenario_passed, run_molecule


def test_cuda_role_molecule(tmp_path):
    run = run_molecule("cuda", tmp_path)
    converge = assert_scenario_passed(run, ["cuda-node"])
    assert converge["cuda-node"] > 0
    assert "cuda: CUDA 11.8 runtime installed from debian" in " ".join(run.output.split())
