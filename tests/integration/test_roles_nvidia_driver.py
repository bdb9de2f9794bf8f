"""roles/nvidia_driver through Molecule on two local nodes without a GPU: one installs nothing and says
so, the other ("install anyway") really installs Debian's non-free driver, held, not loaded."""

from __future__ import annotations

import pytest

from roles_molecule import assert_scenario_passed, run_molecule


@pytest.mark.slow
def test_nvidia_driver_role_molecule(tmp_path):
    run = run_molecule("nvidia_driver", tmp_path)
    converge = assert_scenario_passed(run, ["driver-plain", "driver-bake"])
    assert converge["driver-plain"] == 0 and converge["driver-bake"] > 0, converge
    text = " ".join(run.output.split())
    assert "nvidia_driver: no NVIDIA GPU here; nothing installed (set nvidia_driver_install_without_gpu" in text
    assert "nvidia_driver: no NVIDIA GPU here; the driver packages are installed but no module is loaded" in text
