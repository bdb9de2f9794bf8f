"""Bad input stops playbooks/configure.yml in its first play, with a message naming the conflict and
the fix, before anything is installed on the node."""

from __future__ import annotations

import pytest

from conftest import one_node, run_playbook


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One fresh local node (cluster of its own) for all the cases; removed afterwards, pass or fail."""
    yield from one_node(tmp_path_factory, "badinput")


def ssh(node, command):
    return node.ssh(command)


def assert_nothing_installed(node):
    out = ssh(node, "ls /etc/apt/sources.list.d/; ls -d /opt/aiinfra /etc/docker 2>&1; "
                    "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' python3-venv docker.io nvidia-kernel-dkms 2>&1")
    assert out.returncode in (0, 1, 2), out.stderr
    assert "aiinfra-" not in out.stdout, out.stdout
    assert "No such file or directory" in out.stdout and "/opt/aiinfra" in out.stdout, out.stdout
    assert " installed" not in out.stdout.replace("not-installed", ""), out.stdout


CASES = [
    ("driver-branch-not-for-this-os", {"nvidia_driver_branch": "580", "nvidia_driver_install_without_gpu": True},
     "nvidia_driver: driver branch 580 does not exist for debian-12 from debian (branches there: 535); set "
     "nvidia_driver_branch to one of them or nvidia_driver_source: cuda_repo"),
    ("torch-cuda-pair-without-wheels", {"pytorch_cuda_index": "cu118"},
     "pytorch: torch 2.13.0 has no cu118 wheels (it publishes cpu, cu128, cu130); set pytorch_cuda_index to one of them"),
    ("cuda-newer-than-driver", {"nvidia_driver_install_without_gpu": True, "cuda_install": True,
                                "cuda_source": "cuda_repo", "cuda_version": "12.8"},
     "cuda: CUDA 12.8 is newer than driver branch 535 supports (up to CUDA 12.2); set cuda_version to 12.2 or older, "
     "or nvidia_driver_branch to 570 or newer"),
    ("cu130-wheels-on-a-535-driver", {"nvidia_driver_install_without_gpu": True, "pytorch_cuda_index": "cu130"},
     "pytorch: cu130 wheels (CUDA 13.0) need driver branch 580 or newer; the node's driver is 535"),
]


@pytest.mark.parametrize("extra, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_before_installing(node, extra, message):
    proc = run_playbook("playbooks/configure.yml", inventory=node["inventory"], extra_vars=extra, check=False)
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split()), proc.stdout[-4000:]
    # it stopped in the first play (the plan checks), before the play that installs
    assert "PLAY [Configure the nodes]" not in proc.stdout
    assert_nothing_installed(node)


def test_check_mode_on_a_fresh_node_changes_nothing(node):
    proc = run_playbook("playbooks/configure.yml", "--check", inventory=node["inventory"])
    recap = proc.stdout[proc.stdout.rindex("PLAY RECAP"):]
    line = [ln for ln in recap.splitlines() if ln.startswith(node["cluster"] + "-0")][0]
    assert "failed=0" in line and "changed=0" not in line, line  # it reports what it would do
    assert_nothing_installed(node)


def test_unsupported_os_fails_in_preflight(node):
    # make the node look like Debian 11 (what Ansible's distribution facts read)
    out = ssh(node, "sudo sh -c 'echo 11.9 > /etc/debian_version; "
                    "sed -i -e s/^VERSION_ID=.*/VERSION_ID=\\\"11\\\"/ -e s/bookworm/bullseye/g /etc/os-release'")
    assert out.returncode == 0, out.stderr
    proc = run_playbook("playbooks/configure.yml", inventory=node["inventory"], check=False)
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert "Debian 11" in text and "is not supported: the GPU node roles support debian-12, rhel-9, ubuntu-22.04, " \
        "ubuntu-24.04" in text, proc.stdout[-4000:]
    assert "TASK [aiinfra.gpu_cluster.preflight : Fail early on an unsupported OS]" in proc.stdout
    assert "PLAY [Configure the nodes]" not in proc.stdout
    assert_nothing_installed(node)
