"""roles/preflight through Molecule: facts, an extra CA trusted, the bounded wait for apt's lock."""

from __future__ import annotations

from roles_molecule import assert_scenario_passed, run_molecule


def test_preflight_role_molecule(tmp_path):
    run = run_molecule("preflight", tmp_path)
    converge = assert_scenario_passed(run, ["preflight-node"])
    assert converge["preflight-node"] > 0  # the CA certificate went in
    assert "Debian 12" in run.output and "no NVIDIA GPU" in run.output
