"""roles/dataset through Molecule: the storage client and a data set from an S3 server (moto, on the cluster network)
onto a local node, verified byte for byte; the second run moves nothing."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


# ~11 min here at load ~20 (the client's virtualenv and pip on the node): not in make test; make test-molecule and
# make test-scale run it
@pytest.mark.scale
def test_dataset_role_molecule(tmp_path):
    run = run_molecule("dataset", tmp_path)
    converge = assert_scenario_passed(run, ["dataset-node"])
    assert converge["dataset-node"] > 0
    assert "molecule-secret-not-printed" not in run.output
    # destroy.yml stopped the scenario's S3 server
    assert not (tmp_path / "molecule" / "moto.pid").exists()
