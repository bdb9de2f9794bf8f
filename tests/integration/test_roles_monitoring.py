"""roles/monitoring through Molecule (roles/monitoring/molecule/default): converge, idempotence, verify on a local node."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


# several minutes (Debian's prometheus and node exporter installed on the node): not in make test; make test-molecule and make test-scale run it
@pytest.mark.scale
def test_monitoring_role_molecule(tmp_path):
    run = run_molecule("monitoring", tmp_path, timeout=1800)
    converge = assert_scenario_passed(run, ["monitoring-node"])
    assert converge["monitoring-node"] > 0
