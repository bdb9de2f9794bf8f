"""roles/tensorflow: through Molecule on a local node (the wheelhouse built on the controller and staged,
tensorflow-cpu installed and verified, a second run 0 changed, the example trained under MultiWorkerMirroredStrategy
and resumed); configure.yml on 2 fresh nodes with both frameworks named as a string, then unchanged; and its framework
choice checked before any node is touched."""

from __future__ import annotations

import re

import pytest

from conftest import run_playbook, write_inventory
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


@pytest.mark.tensorflow
def test_configure_installs_both_frameworks_named_as_a_string_then_changes_nothing(tmp_path, cluster_name):
    """2 fresh local nodes, gpu_cluster_frameworks typed as a survey gives it: both virtualenvs, verified; a second
    run changes nothing."""
    inventory = write_inventory(tmp_path, cluster_name, size=2)
    run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
    frameworks = {"gpu_cluster_frameworks": "pytorch,tensorflow"}
    first = run_playbook("playbooks/configure.yml", inventory=inventory, extra_vars=frameworks, timeout=1800)
    text = " ".join(first.stdout.split())
    assert text.count("tensorflow: TensorFlow 2.21.0 works in /opt/aiinfra/tensorflow") == 2, first.stdout[-3000:]
    assert text.count("pytorch: torch 2.13.0+cpu works in /opt/aiinfra/pytorch") == 2, first.stdout[-3000:]
    second = run_playbook("playbooks/configure.yml", inventory=inventory, extra_vars=frameworks, timeout=1800)
    recap = dict((m.group(1), int(m.group(2))) for m in re.finditer(
        r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", second.stdout[second.stdout.rindex("PLAY RECAP"):], re.M))
    nodes = ["%s-%d" % (cluster_name, rank) for rank in range(2)]
    assert sorted(h for h in recap if h in nodes) == nodes and all(recap[n] == 0 for n in nodes), second.stdout[-3000:]
    # and without tensorflow named (the default), the TensorFlow role does nothing: its entry is skipped, no file of
    # it is included
    third = run_playbook("playbooks/configure.yml", inventory=inventory, timeout=1800)
    assert "roles/tensorflow/tasks/" not in third.stdout and "tensorflow: " not in third.stdout, third.stdout[-3000:]
