"""The local (podman) provider's pure parts; tests/integration runs it for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import errors, local, providers
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import image as local_image
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import provider as local_provider


def test_podman_missing_is_a_config_error_with_install_hint(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(errors.ConfigError) as err:
        local.Podman()
    assert "podman is not installed" in str(err.value) and "apt-get install podman" in str(err.value)


@pytest.mark.parametrize("stderr,kind", [
    ("Error: no such container x", errors.NotFoundError),
    ("Error: network foo not found", errors.NotFoundError),
    ("Error: operation not permitted", errors.ConfigError),
    ("Error: database is locked", errors.TransientError),
    ("Error: something else", errors.CloudError),
])
def test_classify_podman(stderr, kind):
    err = local.classify_podman(("rm", "x"), 125, stderr)
    assert err.__class__ is kind and "podman rm x" in str(err)


def test_image_tag_follows_the_recipe(tmp_path):
    ca = tmp_path / "corp.crt"
    ca.write_text("A")
    first = local.image_recipe(ca_files=[str(ca)])
    assert local.image_recipe(ca_files=[str(ca)]) == first
    ca.write_text("B")                       # a new corporate CA means a new image
    assert local.image_recipe(ca_files=[str(ca)]) != first
    assert local.image_recipe(mirror="http://mirror.example/debian", ca_files=[str(ca)]) != first


def test_containers_conf_written_once_and_user_conf_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AIINFRA_GPU_CLUSTER_CACHE", str(tmp_path))
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    path = local.LocalProvider({}).containers_conf()
    assert path == str(tmp_path / "containers.conf")
    assert 'runtime = "runc"' in open(path).read()
    mtime = os.stat(path).st_mtime_ns
    local.LocalProvider({}).containers_conf()
    assert os.stat(path).st_mtime_ns == mtime
    assert local.LocalProvider({"podman_conf": "/etc/mine.conf"}).containers_conf() == "/etc/mine.conf"
    monkeypatch.setenv("CONTAINERS_CONF", "/env.conf")
    assert local.LocalProvider({}).containers_conf() == "/env.conf"


def test_node_from_inspect():
    info = {
        "Id": "0123456789abcdef", "Name": "c1-1",
        "Config": {"Labels": {"aiinfra-gpu-cluster": "c1", "aiinfra-gpu-rank": "1", "aiinfra-ssh-user": "gpuadmin",
                              "team": "nlp"}},
        "State": {"Running": True, "Status": "running"},
        "NetworkSettings": {"Networks": {"aiinfra-c1": {"IPAddress": "10.89.0.3"}},
                            "Ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40022"}]}},
    }
    node = local.LocalProvider({"ssh_access": "address"})._node(info, "c1")
    assert (node.rank, node.name, node.id, node.state) == (1, "c1-1", "0123456789ab", "running")
    assert (node.ssh_host, node.ssh_port, node.private_address) == ("10.89.0.3", 22, "10.89.0.3")
    assert node.labels == {"team": "nlp"}
    node = local.LocalProvider({"ssh_access": "published"})._node(info, "c1")
    assert (node.ssh_host, node.ssh_port) == ("127.0.0.1", 40022)
    info["State"] = {"Running": False, "Status": "exited"}
    node = local.LocalProvider({"ssh_access": "address"})._node(info, "c1")
    assert node.state == "stopped" and node.ssh_host == ""


def test_customise_rootfs(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("shared key")
    (root / "etc/apt").mkdir(parents=True)
    (root / "etc/apt/sources.list").write_text("deb http://x bookworm main")
    (root / "usr/local/share/ca-certificates").mkdir(parents=True)
    ca = tmp_path / "corp.crt"
    ca.write_text("CA")
    ran = []
    monkeypatch.setattr(local_image, "extra_ca_files", lambda: [str(ca)])
    monkeypatch.setattr(local_image, "_run", lambda cmd, what: ran.append(cmd))
    local_image.customise_rootfs(str(root))
    assert not (root / "etc/ssh/ssh_host_ed25519_key").exists()        # every node makes its own
    assert (root / "etc/systemd/system/ssh.service.wants/aiinfra-hostkeys.service").is_symlink()
    assert "PasswordAuthentication no" in (root / "etc/ssh/sshd_config.d/aiinfra.conf").read_text()
    assert (root / "usr/local/share/ca-certificates/corp.crt").read_text() == "CA"
    assert ran == [["chroot", str(root), "update-ca-certificates"]]
    sources = (root / "etc/apt/sources.list.d/debian.sources").read_text()
    assert "http://deb.debian.org/debian-security" in sources and not (root / "etc/apt/sources.list").exists()


def test_cloud_options_rejects_another_clouds_options():
    with pytest.raises(errors.ConfigError, match="region belongs to cloud aws and gcp"):
        providers.cloud_options("local", {"region": "us-east-1"})
    assert providers.cloud_options("local", {"region": None, "privileged": True})["privileged"] is True


def test_unknown_cloud():
    with pytest.raises(errors.ConfigError, match="unknown cloud 'mars'"):
        providers.get_provider("mars")


def test_transient_podman_failures_are_retried(monkeypatch):
    answers = [(125, "Error: database is locked"), (125, "Error: database is locked"), (0, "")]
    calls = []

    class Proc(object):
        def __init__(self, rc, err):
            self.returncode, self.stderr, self.stdout = rc, err, "ok"

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return Proc(*answers.pop(0))

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    pod = local.Podman(binary="/usr/bin/podman")
    assert pod.run("ps").stdout == "ok" and len(calls) == 3
    answers[:] = [(125, "Error: no such container x")]
    with pytest.raises(errors.NotFoundError):
        pod.run("rm", "x")


@pytest.mark.parametrize("subnet, gateway, rank, address", [
    ("10.89.3.0/24", "10.89.3.1", 0, "10.89.3.2"),
    ("10.89.3.0/24", "10.89.3.1", 2, "10.89.3.4"),
    ("10.89.3.0/24", None, 1, "10.89.3.3"),
    ("10.89.3.0/24", "10.89.3.254", 0, "10.89.3.1"),
    ("10.89.3.0/24", "10.89.3.1", 252, "10.89.3.254"),
    ("10.89.3.0/24", "10.89.3.1", 253, None),  # no room: podman picks one
    ("fd00::/64", "fd00::1", 0, None),
    ("", None, 0, None),
])
def test_a_local_nodes_address_is_fixed_by_its_rank(subnet, gateway, rank, address):
    assert local_provider.rank_address(subnet, gateway, rank) == address
