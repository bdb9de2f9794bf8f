# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local cloud's node image: Debian 12 built once with debootstrap (no registry needed) and cached under a
tag derived from its recipe, so a changed recipe builds a new image and an unchanged one never rebuilds."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError

IMAGE_REPO = "localhost/aiinfra-gpu-node"
IMAGE_RECIPE_VERSION = "3"
IMAGE_PACKAGES = (
    "openssh-server", "python3", "python3-apt", "sudo", "iproute2", "iputils-ping", "systemd", "systemd-sysv",
    "dbus", "ca-certificates", "procps", "curl", "gnupg", "less", "kmod", "pciutils", "lsb-release",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
EXTRA_CA_GLOB = "/usr/local/share/ca-certificates/*.crt"

SSHD_CONF = """# aiinfra.gpu_cluster node defaults
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
"""

HOSTKEYS_UNIT = """[Unit]
Description=Generate this node's SSH host keys (aiinfra.gpu_cluster)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""

APT_SOURCES = """Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def cache_dir():
    base = os.environ.get("AIINFRA_GPU_CLUSTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aiinfra-gpu-cluster")
    os.makedirs(base, exist_ok=True)
    return base


def extra_ca_files():
    return sorted(glob.glob(EXTRA_CA_GLOB))


def image_recipe(mirror=DEFAULT_MIRROR, ca_files=None):
    """Everything that goes into the node image, hashed into its tag."""
    ca_files = extra_ca_files() if ca_files is None else ca_files
    digest = hashlib.sha256()
    for part in (IMAGE_RECIPE_VERSION, mirror, " ".join(IMAGE_PACKAGES), SSHD_CONF, HOSTKEYS_UNIT, APT_SOURCES):
        digest.update(part.encode("utf-8"))
    for path in ca_files:
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:12]


def default_image(mirror=DEFAULT_MIRROR):
    return "%s:bookworm-%s" % (IMAGE_REPO, image_recipe(mirror))


def build_image(podman, image, mirror=DEFAULT_MIRROR, log=None):
    """Build the Debian 12 node image with debootstrap, once, under a lock."""
    log = log or (lambda msg: None)
    lock_path = os.path.join(cache_dir(), "image-build.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman.run("image", "exists", image, check=False).returncode == 0:
            return image  # another process built it while we waited
        if os.geteuid() != 0:
            raise ConfigError("building the node image needs root (debootstrap)",
                              hint="Run once as root, or pass 'image' naming a systemd+sshd image you built")
        if not shutil.which("debootstrap"):
            raise ConfigError("debootstrap is missing", hint="apt-get install debootstrap")
        workdir = tempfile.mkdtemp(prefix="aiinfra-image-", dir=cache_dir())
        root = os.path.join(workdir, "rootfs")
        started = time.time()
        try:
            _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(IMAGE_PACKAGES), "bookworm", root,
                  mirror], "debootstrap")
            customise_rootfs(root, mirror)
            tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
            proc = subprocess.run([podman.binary, "import", "--change", "CMD=/sbin/init",
                                   "--change", "STOPSIGNAL=SIGRTMIN+3", "--message", "aiinfra.gpu_cluster node",
                                   "-", image], stdin=tar.stdout, capture_output=True, text=True, env=podman.env,
                                  check=False)
            tar.wait()
            if proc.returncode != 0 or tar.returncode != 0:
                raise CloudError("podman import failed: %s" % proc.stderr.strip())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        log("built node image %s in %.0fs" % (image, time.time() - started))
        return image


def _run(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise CloudError("%s failed (exit %s): %s" % (what, proc.returncode, tail),
                         hint="Check that the Debian mirror is reachable from the controller")
    return proc


def _write(root, rel, text, mode=0o644):
    path = os.path.join(root, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def customise_rootfs(root, mirror=DEFAULT_MIRROR):
    """Turn a debootstrap tree into a cloud-VM-like node: sshd, fresh host keys, the controller's CAs."""
    for key in glob.glob(os.path.join(root, "etc/ssh/ssh_host_*")):
        os.unlink(key)
    _write(root, "/etc/ssh/sshd_config.d/aiinfra.conf", SSHD_CONF)
    _write(root, "/etc/systemd/system/aiinfra-hostkeys.service", HOSTKEYS_UNIT)
    wants = os.path.join(root, "etc/systemd/system/ssh.service.wants")
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, "aiinfra-hostkeys.service")
    if not os.path.lexists(link):
        os.symlink("/etc/systemd/system/aiinfra-hostkeys.service", link)
    security = mirror.rstrip("/") + "-security" if mirror.rstrip("/").endswith("/debian") else mirror
    _write(root, "/etc/apt/sources.list.d/debian.sources", APT_SOURCES.format(mirror=mirror, security=security))
    sources_list = os.path.join(root, "etc/apt/sources.list")
    if os.path.exists(sources_list):
        os.unlink(sources_list)
    # trust the controller's extra CAs (TLS-intercepting proxies, private PKI)
    for path in extra_ca_files():
        shutil.copy(path, os.path.join(root, "usr/local/share/ca-certificates", os.path.basename(path)))
    _run(["chroot", root, "update-ca-certificates"], "update-ca-certificates")
    # a container has no consoles or udev to wait for
    for unit in ("getty@tty1.service", "console-getty.service", "systemd-udevd.service", "systemd-udev-trigger.service"):
        target = os.path.join(root, "etc/systemd/system", unit)
        if not os.path.lexists(target):
            os.symlink("/dev/null", target)
    _write(root, "/etc/machine-id", "")
    shutil.rmtree(os.path.join(root, "var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(os.path.join(root, "var/cache/apt/archives/partial"), exist_ok=True)
