# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``local`` cloud: podman containers booting systemd + sshd on the controller.

Each cluster gets a podman network of its own (``aiinfra-<cluster>``); each node
is a container named ``<cluster>-<rank>`` on it, labelled with the cluster id and
rank, with the user's SSH public key installed for ``ssh_user`` (passwordless
sudo), as cloud-init would on a VM. The node image (Debian 12) is built once
with debootstrap (no registry needed) and cached under a tag derived from its
recipe, so a changed recipe builds a new image and an unchanged one never
rebuilds.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, OWNER_TAG, RANK_TAG, Node, Provider, node_name)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    ConfigError, CloudError, NotFoundError, TransientError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.retry import RetryPolicy, call, wait_until

IMAGE_REPO = "localhost/aiinfra-gpu-node"
IMAGE_RECIPE_VERSION = "3"
IMAGE_PACKAGES = (
    "openssh-server", "python3", "python3-apt", "sudo", "iproute2", "iputils-ping", "systemd", "systemd-sysv",
    "dbus", "ca-certificates", "procps", "curl", "gnupg", "less", "kmod", "pciutils", "lsb-release",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
EXTRA_CA_GLOB = "/usr/local/share/ca-certificates/*.crt"
INSTALL_HINT = ("Install podman on the controller: 'apt-get install podman runc' (Debian/Ubuntu) or "
                "'dnf install podman' (RHEL/Fedora); 'make setup' does it for you")

CONTAINERS_CONF = """# written by aiinfra.gpu_cluster (local cloud); see TESTING.md
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""

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

# Runs inside a new node as root, like cloud-init's user module. $1 = user;
# the public key arrives on stdin so it never shows in a process list.
USER_SCRIPT = r"""set -eu
user="$1"
key="$(cat)"
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
home="$(getent passwd "$user" | cut -d: -f6)"
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
printf '%s\n' "$key" > "$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > /etc/sudoers.d/90-aiinfra-user
chmod 0440 /etc/sudoers.d/90-aiinfra-user
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


class Podman(object):
    """A thin runner around the podman CLI (JSON out, classified errors in)."""

    def __init__(self, binary=None, conf=None, timeout=300):
        self.binary = binary or shutil.which("podman")
        if not self.binary:
            raise ConfigError("podman is not installed on the controller (the local cloud runs nodes as podman "
                              "containers)", hint=INSTALL_HINT)
        self.env = dict(os.environ)
        if conf:
            self.env["CONTAINERS_CONF"] = conf
        self.timeout = timeout
        self.calls = 0

    def run(self, *args, **kwargs):
        """Run podman; a transient failure (lock contention, a slow answer) is retried by the one retry helper."""
        return call(lambda: self._run_once(*args, **kwargs), policy=RetryPolicy(attempts=4, base=0.5, cap=4.0))

    def _run_once(self, *args, **kwargs):
        stdin = kwargs.pop("stdin", None)
        check = kwargs.pop("check", True)
        timeout = kwargs.pop("timeout", self.timeout)
        self.calls += 1
        try:
            proc = subprocess.run([self.binary] + list(args), input=stdin, capture_output=True, text=True,
                                  env=self.env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TransientError("podman %s did not answer within %ss" % (args[0], timeout))
        if check and proc.returncode != 0:
            raise classify_podman(args, proc.returncode, proc.stderr)
        return proc

    def json(self, *args):
        out = self.run(*args).stdout.strip()
        return json.loads(out) if out else []


def classify_podman(args, rc, stderr):
    text = (stderr or "").strip().splitlines()
    msg = text[-1] if text else "exit code %s" % rc
    what = "podman %s" % " ".join(args[:2])
    low = msg.lower()
    if "no such" in low or "not found" in low or "does not exist" in low:
        return NotFoundError("%s: %s" % (what, msg))
    if "permission denied" in low or "operation not permitted" in low:
        return ConfigError("%s: %s" % (what, msg), hint="Run as root, or configure rootless podman (subuid/subgid)")
    # "container state improper" / "resource busy": a removal racing the container's own stop (seen under load)
    if ("locked" in low or "timeout" in low or "temporarily" in low or "state improper" in low
            or "resource busy" in low):
        return TransientError("%s: %s" % (what, msg))
    return CloudError("%s: %s" % (what, msg))


def ssh_banner(host, port, timeout=2.0):
    """True when ``host:port`` answers with an SSH protocol banner."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except (OSError, ValueError):
        return False


class LocalProvider(Provider):
    """podman containers as nodes."""

    name = "local"
    options = ("image", "privileged", "cpus", "memory", "ssh_access", "podman_conf", "debian_mirror")

    def __init__(self, options=None, log=None):
        super(LocalProvider, self).__init__(options, log)
        self._podman = None

    # -- plumbing ----------------------------------------------------------
    @property
    def podman(self):
        if self._podman is None:
            self._podman = Podman(conf=self.containers_conf())
        return self._podman

    def containers_conf(self):
        """The containers.conf podman runs with: the user's, else ours (runc, no default ulimits)."""
        conf = self.opts.get("podman_conf") or os.environ.get("CONTAINERS_CONF")
        if conf:
            return conf
        if not shutil.which("runc"):
            return None
        path = os.path.join(cache_dir(), "containers.conf")
        current = None
        if os.path.exists(path):
            with open(path) as handle:
                current = handle.read()
        if current != CONTAINERS_CONF:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
            with os.fdopen(fd, "w") as handle:
                handle.write(CONTAINERS_CONF)
            os.rename(tmp, path)
        return path

    def ssh_access(self):
        mode = self.opts.get("ssh_access") or "auto"
        if mode == "auto":
            mode = "address" if os.geteuid() == 0 else "published"
        return mode

    @staticmethod
    def network_name(cluster):
        return "aiinfra-%s" % cluster

    def image(self):
        return self.opts.get("image") or default_image(self.opts.get("debian_mirror") or DEFAULT_MIRROR)

    def image_exists(self, image):
        return self.podman.run("image", "exists", image, check=False).returncode == 0

    # -- Provider interface ------------------------------------------------
    def preflight(self, spec):
        self.podman  # noqa: B018 -- raises ConfigError when podman is missing
        image = self.image()
        if self.opts.get("image") and not self.image_exists(image):
            raise NotFoundError("local image %r does not exist" % image,
                                hint="Leave 'image' unset to build the default Debian 12 node image")
        if not self.opts.get("image") and not self.image_exists(image) and not shutil.which("debootstrap"):
            raise ConfigError("the node image %s is not built yet and debootstrap is missing" % image,
                              hint="Install it: 'apt-get install debootstrap' ('make setup' does)")

    def _containers(self, cluster):
        """``podman inspect`` of every container carrying the cluster label."""
        rows = self.podman.json("ps", "-a", "--filter", "label=%s=%s" % (CLUSTER_TAG, cluster), "--format", "json")
        if not rows:
            return []
        names = [row["Names"][0] if isinstance(row.get("Names"), list) else row["Names"] for row in rows]
        return self.podman.json("inspect", "--type", "container", *names)

    @staticmethod
    def _managed(labels):
        return (labels or {}).get(MANAGED_TAG) == MANAGED_VALUE

    def list_nodes(self, cluster):
        return [self._node(info, cluster) for info in self._containers(cluster)
                if self._managed(info.get("Config", {}).get("Labels"))]

    def _networks(self, cluster):
        return self.podman.json("network", "ls", "--filter", "label=%s=%s" % (CLUSTER_TAG, cluster), "--format", "json")

    def kept_resources(self, cluster):
        why = "carries %s=%s but not %s" % (CLUSTER_TAG, cluster, MANAGED_TAG)
        kept = ["container/%s (%s)" % (info.get("Name", "").lstrip("/"), why) for info in self._containers(cluster)
                if not self._managed(info.get("Config", {}).get("Labels"))]
        kept += ["network/%s (%s)" % (row.get("name") or row.get("Name"), why) for row in self._networks(cluster)
                 if not self._managed(row.get("labels") or row.get("Labels"))]
        return kept

    def _node(self, info, cluster):
        labels = info.get("Config", {}).get("Labels") or {}
        state = info.get("State", {})
        status = "running" if state.get("Running") else ("stopped" if state.get("Status") in (
            "exited", "stopped", "created") else state.get("Status", "unknown"))
        nets = info.get("NetworkSettings", {}).get("Networks") or {}
        net = nets.get(self.network_name(cluster)) or (list(nets.values())[0] if nets else {})
        address = net.get("IPAddress", "") if status == "running" else ""
        ports = (info.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp") or []
        if self.ssh_access() == "published" and ports:
            host, port = ports[0].get("HostIp") or "127.0.0.1", int(ports[0].get("HostPort"))
        else:
            host, port = address, 22
        user_labels = dict((k, v) for k, v in labels.items() if not k.startswith("aiinfra-"))
        return Node(
            rank=int(labels.get(RANK_TAG, -1)),
            name=info.get("Name", "").lstrip("/"),
            id=info.get("Id", "")[:12],
            state=status,
            private_address=address,
            ssh_host=host,
            ssh_port=port,
            ssh_user=labels.get("aiinfra-ssh-user", ""),
            instance_type=labels.get("aiinfra-instance-type", ""),
            zone="localhost",
            labels=user_labels,
            launch_time=str(info.get("Created") or ""),
            owner=labels.get(OWNER_TAG, ""),
        )

    def ensure_network(self, cluster):
        name = self.network_name(cluster)
        if self.podman.run("network", "exists", name, check=False).returncode != 0:
            # isolate: nodes reach their own cluster's nodes on every port, and no other cluster's
            self.podman.run("network", "create", "--opt", "isolate=true", "--label", "%s=%s" % (CLUSTER_TAG, cluster),
                            "--label", "%s=%s" % (MANAGED_TAG, MANAGED_VALUE), name)
        return name

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        image = self.image()
        if not self.image_exists(image):
            if self.opts.get("image"):
                raise NotFoundError("local image %r does not exist" % image)
            build_image(self.podman, image, self.opts.get("debian_mirror") or DEFAULT_MIRROR, log=self.log)
        network = self.ensure_network(spec.cluster)
        created = []
        try:
            for rank in ranks:
                created.append(self._run_node(spec, rank, image, network))
        except CloudError:
            # all or nothing: remove what this call made before failing
            if created:
                self.podman.run("rm", "-f", "-t", "0", *created, check=False)
            raise
        return [n for n in self.list_nodes(spec.cluster) if n.name in created]

    def _run_node(self, spec, rank, image, network):
        name = node_name(spec.cluster, rank)
        args = ["run", "-d", "--name", name, "--hostname", name, "--network", network, "--systemd", "always"]
        labels = spec.tags(rank)
        labels["aiinfra-ssh-user"] = spec.ssh_user
        if spec.instance_type:
            labels["aiinfra-instance-type"] = spec.instance_type
        for key, value in sorted(labels.items()):
            args += ["--label", "%s=%s" % (key, value)]
        if self.opts.get("privileged"):
            args.append("--privileged")
        if self.opts.get("cpus"):
            args += ["--cpus", str(self.opts["cpus"])]
        if self.opts.get("memory"):
            args += ["--memory", str(self.opts["memory"])]
        if self.ssh_access() == "published":
            args += ["-p", "127.0.0.1::22"]
        args += [image, "/sbin/init"]
        self.podman.run(*args)
        try:
            self.podman.run("exec", "-i", name, "/bin/sh", "-c", USER_SCRIPT, "aiinfra-user", spec.ssh_user,
                            stdin=spec.ssh_public_key + "\n")
        except CloudError:
            self.podman.run("rm", "-f", "-t", "0", name, check=False)
            raise
        return name

    def start_nodes(self, cluster, nodes):
        if nodes:
            self.podman.run("start", *[n.name for n in nodes])

    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        if nodes:
            self.podman.run("rm", "-f", "-t", "2", *[n.name for n in nodes])

    def wait_ready(self, cluster, nodes, timeout):
        wanted = set(n.name for n in nodes)
        state = {"pending": sorted(wanted)}

        def ready():
            current = dict((n.name, n) for n in self.list_nodes(cluster) if n.name in wanted)
            missing = sorted(wanted - set(current))
            if missing:
                raise NotFoundError("node(s) %s disappeared while waiting" % ", ".join(missing))
            pending = sorted(name for name, n in current.items()
                             if n.state != "running" or not n.ssh_host or not ssh_banner(n.ssh_host, n.ssh_port))
            state["pending"] = pending
            return None if pending else list(current.values())

        ready.pending = lambda: ", ".join(state["pending"]) or "none"
        return wait_until(ready, timeout, interval=0.5, what="nodes to answer on SSH")

    def cluster_resources(self, cluster):
        return ["network/%s" % (row.get("name") or row.get("Name")) for row in self._networks(cluster)
                if self._managed(row.get("labels") or row.get("Labels"))]

    def delete_cluster_resources(self, cluster, timeout=600):
        deleted = []
        for res in self.cluster_resources(cluster):
            name = res.split("/", 1)[1]
            self.podman.run("network", "rm", "-f", name)
            deleted.append(res)
        return deleted

    def describe(self, nodes=None, prepared=None, launch=None):
        return {"cloud": self.name, "image": self.image(), "ssh_access": self.ssh_access()}


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
