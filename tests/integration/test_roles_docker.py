"""roles/docker through Molecule on a privileged local node: docker.io, daemon running, an existing
daemon.json merged (not overwritten), the login user in the docker group; second run 0 changed."""

from __future__ import annotations

import re

from roles_molecule import assert_scenario_passed, run_molecule


def test_docker_role_molecule(tmp_path):
    run = run_molecule("docker", tmp_path)
    converge = assert_scenario_passed(run, ["docker-node"])
    assert converge["docker-node"] > 0
    assert re.search(r"docker: 20\.10\.\S+ running", run.output), run.output[-3000:]
