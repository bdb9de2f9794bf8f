"""The nvidia_driver and cuda roles share NVIDIA's CUDA repository: nvidia_driver owns its files
(aiinfra-cuda.sources, cuda-archive-keyring.asc), cuda adds them through it. With only cuda_repo_url set
(a mirror), both install from the mirror and a second run changes nothing; two different mirrors fail
before anything is written. Every setting is passed as `-e key=value`, i.e. as strings, so the same runs
show the roles typing what users type: "no", "true", lists as shell words.

The mirror is real: a flat apt repository on the node (file://), signed with a key made here, holding
stand-ins for the packages the plans name (nvidia-open-580, cuda-cudart-13-0).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from conftest import one_node, run_playbook

MIRROR = "file:///srv/aiinfra-test-cuda-mirror/"
PLAYBOOK = "tests/integration/playbooks/driver_cuda_mirror.yml"


def build_mirror(tmp):
    """A signed flat apt repository: two stand-in packages, Packages, InRelease, the key as <name>.pub."""
    mirror, build, gnupg = tmp / "mirror", tmp / "build", tmp / "gnupg"
    for path in (mirror, build, gnupg):
        path.mkdir(mode=0o700)
    for name, version in (("nvidia-open-580", "580.82.07-1"), ("cuda-cudart-13-0", "13.0.96-1")):
        root = build / name
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            "Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: test <test@example.invalid>\n"
            "Description: stand-in for the CUDA repository's %s\n" % (name, version, name))
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(mirror / (name + ".deb"))],
                       check=True, capture_output=True)
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=mirror, check=True,
                              capture_output=True, text=True).stdout
    (mirror / "Packages").write_text(packages)
    digest = hashlib.sha256(packages.encode()).hexdigest()
    (mirror / "Release").write_text("Origin: aiinfra-test\nLabel: aiinfra-test\nDate: Tue, 01 Dec 2026 00:00:00 UTC\n"
                                    "SHA256:\n %s %d Packages\n" % (digest, len(packages.encode())))
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run(gpg + ["--quick-gen-key", "aiinfra test mirror <test@example.invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    subprocess.run(gpg + ["--clearsign", "-o", str(mirror / "InRelease"), str(mirror / "Release")], check=True,
                   capture_output=True)
    key = subprocess.run(gpg + ["--armor", "--export"], check=True, capture_output=True, text=True).stdout
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], check=False, capture_output=True)
    (mirror / "3bf863cc.pub").write_text(key)  # the key file name the CUDA repository for debian12 uses
    return mirror


def make_ca_pair(tmp):
    paths = []
    for name in ("test-ca-a", "test-ca-b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-subj", "/CN=aiinfra %s" % name, "-days", "2", "-keyout", str(tmp / (name + ".key")),
                        "-out", str(tmp / (name + ".pem"))], check=True, capture_output=True)
        paths.append(str(tmp / (name + ".pem")))
    return paths


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    for node in one_node(tmp_path_factory, "repo"):
        node.update(mirror=build_mirror(node["tmp"]), cas=make_ca_pair(node["tmp"]))
        yield node


def as_strings(node, **extra):
    """Extra vars as users give them: all strings (an AWX survey's answers, a vars file with quoted values), two of
    them as `-e key=value` (a value with spaces quoted inside, as Ansible's key=value parsing needs)."""
    settings = {
        "preflight_extra_ca_certificates": " ".join(node["cas"]),
        "nvidia_driver_source": "cuda_repo",
        "nvidia_driver_install_without_gpu": "yes",
        "nvidia_driver_kernel_headers": "no",
        "nvidia_driver_reboot_batch_size": "2",
        "cuda_source": "cuda_repo",
        "cuda_component": "runtime",
        "cuda_verify": "no",
        "cuda_repo_url": MIRROR,
        "pytorch_torchvision": "yes",
        "pytorch_extra_packages": "numpy==2.3.* 'tensorboard>=2.20'",
        "pytorch_pip_extra_args": "--trusted-host mirror.internal",
    }
    settings.update(extra)
    return ["-e", json.dumps(settings), "-e", "cuda_install=true", "-e", 'docker_users="root gpuadmin"']


def stage_mirror(node):
    """The mirror on the node, where file:// finds it (a tar over ssh: one round trip)."""
    tar = subprocess.run(["tar", "-C", str(node["mirror"]), "-c", "."], capture_output=True, check=True).stdout
    out = node.ssh("sudo mkdir -p /srv/aiinfra-test-cuda-mirror && sudo tar -x --no-same-owner -C "
                   "/srv/aiinfra-test-cuda-mirror && sudo chmod -R go+rX /srv/aiinfra-test-cuda-mirror", stdin=tar)
    assert out.returncode == 0, out.stderr


def changed(proc, host):
    line = [ln for ln in proc.stdout[proc.stdout.rindex("PLAY RECAP"):].splitlines() if ln.startswith(host)][0]
    return int(re.search(r"changed=(\d+)", line).group(1)), line


def test_cuda_repo_url_alone_is_written_once_and_a_second_run_changes_nothing(node):
    host = node["cluster"] + "-0"
    stage_mirror(node)
    first = run_playbook(PLAYBOOK, *as_strings(node), inventory=node["inventory"])
    assert changed(first, host)[0] > 0
    text = " ".join(first.stdout.split())
    typed = json.loads(re.search(r"TYPED-INPUTS=(\{.*\})'", text).group(1))
    assert typed == {"docker_users": ["root", "gpuadmin"],
                     "pytorch_requirements": ["torch==2.13.0+cpu", "torchvision==0.28.0+cpu", "numpy==2.3.*",
                                              "tensorboard>=2.20"],
                     "pytorch_pip_args": typed["pytorch_pip_args"][:-2] + ["--trusted-host", "mirror.internal"]}, typed
    out = node.ssh("cat /etc/apt/sources.list.d/aiinfra-cuda.sources; ls /etc/apt/sources.list.d/ "
                   "/usr/local/share/ca-certificates/; cmp /etc/apt/keyrings/cuda-archive-keyring.asc "
                   "/srv/aiinfra-test-cuda-mirror/3bf863cc.pub && echo same-key; "
                   "dpkg-query -W -f='${Package} ${Status}\\n' nvidia-open-580 cuda-cudart-13-0; "
                   "cat /etc/ld.so.conf.d/aiinfra-cuda.conf")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "URIs: %s\n" % MIRROR in out.stdout and "Signed-By: /etc/apt/keyrings/cuda-archive-keyring.asc" in out.stdout
    assert "same-key" in out.stdout  # the key came from the mirror too
    assert "nvidia-open-580 hold ok installed" in out.stdout and "cuda-cudart-13-0 install ok installed" in out.stdout
    assert "aiinfra-test-ca-a.crt" in out.stdout and "aiinfra-test-ca-b.crt" in out.stdout  # two CAs, not 80 letters
    assert "/usr/local/cuda-13.0/lib64" in out.stdout

    second = run_playbook(PLAYBOOK, *as_strings(node), inventory=node["inventory"])
    count, line = changed(second, host)
    assert count == 0, line + "\n" + "\n".join(ln for ln in second.stdout.splitlines() if ln.startswith("changed:"))

    # two different mirrors for the one file: refused in the driver's plan check, nothing rewritten
    third = run_playbook(PLAYBOOK, *as_strings(node, nvidia_driver_cuda_repo_url="file:///srv/elsewhere/"),
                         inventory=node["inventory"], check=False)
    assert third.returncode != 0
    assert ("nvidia_driver_cuda_repo_url and cuda_repo_url name file:///srv/elsewhere/ and %s. Set one of the two" % MIRROR) \
        in " ".join(third.stdout.split()), third.stdout[-3000:]
    assert "TASK [aiinfra.gpu_cluster.nvidia_driver : Add the CUDA repository]" not in third.stdout
    assert "URIs: %s\n" % MIRROR in node.ssh("cat /etc/apt/sources.list.d/aiinfra-cuda.sources").stdout
