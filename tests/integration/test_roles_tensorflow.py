"""roles/tensorflow: through Molecule on a local node (the wheelhouse built on the controller and staged,
tensorflow-cpu installed and verified, a second run 0 changed, a Keras model trained under
MultiWorkerMirroredStrategy); and configure.yml's framework choice, checked before any node is touched."""

from __future__ import annotations

import pytest

from conftest import run_playbook
from roles_molecule import assert_scenario_passed, run_molecule


@pytest.mark.tensorflow
def test_tensorflow_role_molecule(tmp_path):
    run = run_molecule("tensorflow", tmp_path, timeout=1500)
    converge = assert_scenario_passed(run, ["tensorflow-node"])
    assert converge["tensorflow-node"] > 0
    text = " ".join(run.output.split())
    assert "tensorflow: TensorFlow 2.21.0 works in /opt/aiinfra/tensorflow: a matmul on /CPU:0; Keras 2 (tf-keras) " \
        "2.21.0; no GPUs" in text, \
        run.output[-3000:]


@pytest.mark.parametrize("frameworks", ["pytorch,jax", ["tensorflow", "mxnet"]], ids=["string", "list"])
def test_an_unknown_framework_stops_configure_before_any_node_is_touched(tmp_path, frameworks):
    # hosts nobody can reach (TEST-NET-1): the check runs on the controller, before the first connection
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("gpu_nodes:\n  hosts:\n    tf-bad-0: {ansible_host: 192.0.2.1}\n"
                         "    tf-bad-1: {ansible_host: 192.0.2.2}\n")
    proc = run_playbook("playbooks/configure.yml", inventory=str(inventory), check=False, timeout=300,
                        extra_vars={"gpu_cluster_frameworks": frameworks, "gpu_cluster_cloud": "none"})
    text = " ".join(proc.stdout.split())
    bad = "jax" if isinstance(frameworks, str) else "mxnet"
    assert proc.returncode != 0, text[-3000:]
    assert "gpu_cluster_frameworks: unknown framework %s (the collection installs pytorch and tensorflow)" % bad \
        in text, text[-3000:]
    assert "UNREACHABLE" not in text and "preflight" not in text, text[-3000:]
