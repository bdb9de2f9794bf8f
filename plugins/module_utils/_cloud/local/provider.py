# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``local`` cloud's provider: podman containers booting systemd + sshd on the controller.

Each cluster gets a podman network of its own (``aiinfra-<cluster>``); each node is a container named
``<cluster>-<rank>`` on it, labelled with the cluster id and rank, with the user's SSH public key installed for
``ssh_user`` (passwordless sudo), as cloud-init would on a VM. A node keeps its address when it is stopped and
started again, as a cloud VM keeps its private address: it is fixed at creation from its rank (the network's
first address after the gateway's, plus the rank), since podman hands a stopped container's address back to the
network and gives it the next free one on start - which slurm.conf, the host firewalls and the rendezvous would
no longer know.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, OWNER_TAG, RANK_TAG, Node, Provider, node_name, ttl_minutes_of)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError, NotFoundError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.image import (
    DEFAULT_MIRROR, build_image, cache_dir, default_image)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.options import CLOUD
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.podman import Podman
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.retry import wait_until

# the node's market as it was launched (the spot option); the label lets instance_info report it
MARKET_LABEL = "aiinfra-market"

CONTAINERS_CONF = """# written by aiinfra.gpu_cluster (local cloud); see TESTING.md
[containers]
default_ulimits = []

[engine]
runtime = "runc"
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


# A node's systemd (5) and systemd-logind (1) hold 6 inotify instances of the user podman runs as (root, measured on
# Debian 12 nodes); the kernel's default limit per user, fs.inotify.max_user_instances = 128, fits about 20 nodes on
# a host. Past it a new node's systemd exits at once (status 255, no log) and podman only says "container state
# improper": the provider checks before it makes any node.
INOTIFY_PER_NODE = 6
INOTIFY_LIMIT = "/proc/sys/fs/inotify/max_user_instances"


def inotify_instances(uid, proc="/proc"):
    """How many inotify instances the processes of ``uid`` hold now."""
    count = 0
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            if os.stat(os.path.join(proc, pid)).st_uid != uid:
                continue
            fds = os.path.join(proc, pid, "fd")
            for fd in os.listdir(fds):
                if os.readlink(os.path.join(fds, fd)) == "anon_inode:inotify":
                    count += 1
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return count


def check_inotify(new_nodes, limit_path=None, proc="/proc", uid=None):
    """Fail before any node is made when ``new_nodes`` more nodes would pass the host's inotify limit."""
    try:
        with open(limit_path or INOTIFY_LIMIT) as handle:
            limit = int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return
    used = inotify_instances(os.geteuid() if uid is None else uid, proc)
    needed = used + INOTIFY_PER_NODE * int(new_nodes)
    if needed > limit:
        wanted = max(1024, 2 * needed)
        raise ConfigError(
            "%d more local node(s) need about %d inotify instances (%d per node's systemd; %d in use on this host), "
            "more than fs.inotify.max_user_instances = %d allows: the nodes' systemd would not start"
            % (new_nodes, INOTIFY_PER_NODE * int(new_nodes), INOTIFY_PER_NODE, used, limit),
            hint="Raise the limit: 'sysctl -w fs.inotify.max_user_instances=%d' (and put "
                 "'fs.inotify.max_user_instances = %d' in /etc/sysctl.d/ to keep it)" % (wanted, wanted))


# A job's process group is a full mesh (gloo, NCCL over TCP): on a podman network each of n nodes holds an ARP entry
# for each of the others, n * (n - 1) entries, and the kernel's neighbour table counts every network namespace's
# entries against one limit, net.ipv4.neigh.default.gc_thresh3 (1024 by default). Past it connects fail with "No
# route to host" (/proc/net/stat/arp_cache counts table_fulls): at 32 nodes a job's gloo mesh failed that way.
NEIGH_LIMIT = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"
NEIGH_MARGIN = 128  # the host's own entries and the nodes' gateway


def check_neighbours(cluster_nodes, limit_path=None):
    """Fail before any node is made when a full mesh of ``cluster_nodes`` nodes would overflow the neighbour
    table."""
    try:
        with open(limit_path or NEIGH_LIMIT) as handle:
            limit = int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return
    needed = int(cluster_nodes) * int(cluster_nodes) + NEIGH_MARGIN
    if needed > limit:
        wanted = 1 << (max(needed * 2, 4096) - 1).bit_length()  # a power of two, at least 4096
        raise ConfigError(
            "a job on %d local nodes connects every node to every other: about %d ARP entries, more than "
            "net.ipv4.neigh.default.gc_thresh3 = %d allows (its connects would fail with 'No route to host')"
            % (cluster_nodes, needed, limit),
            hint="Raise the limits: 'sysctl -w net.ipv4.neigh.default.gc_thresh1=%d "
                 "net.ipv4.neigh.default.gc_thresh2=%d net.ipv4.neigh.default.gc_thresh3=%d' (and put them in "
                 "/etc/sysctl.d/ to keep them)" % (wanted // 4, wanted // 2, wanted))


def ssh_banner(host, port, timeout=2.0):
    """True when ``host:port`` answers with an SSH protocol banner."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except (OSError, ValueError):
        return False


def rank_address(subnet, gateway, rank):
    """The address of the node of ``rank`` on a podman network: the subnet's rank-th host address, the gateway's
    left out (IPv4 only; None when the subnet is not one or has no room for the rank)."""
    try:
        net = ipaddress.ip_network(subnet or "", strict=False)
        gw = ipaddress.ip_address(gateway) if gateway else net.network_address + 1
    except ValueError:
        return None
    if net.version != 4 or int(rank) < 0:
        return None
    address = net.network_address + 1 + int(rank)
    if address >= gw:
        address += 1
    if address not in net or address == net.broadcast_address:
        return None
    return str(address)


class LocalProvider(Provider):
    """podman containers as nodes."""

    name = "local"
    cloud = CLOUD

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
        market = "spot" if labels.get(MARKET_LABEL) == "spot" else "on_demand"
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
            launch_time=str(info.get("Created") or ""), market=market,
            owner=labels.get(OWNER_TAG, ""), ttl_minutes=ttl_minutes_of(labels),
        )

    def ensure_network(self, cluster):
        name = self.network_name(cluster)
        if self.podman.run("network", "exists", name, check=False).returncode != 0:
            # isolate: nodes reach their own cluster's nodes on every port, and no other cluster's
            self.podman.run("network", "create", "--opt", "isolate=true", "--label", "%s=%s" % (CLUSTER_TAG, cluster),
                            "--label", "%s=%s" % (MANAGED_TAG, MANAGED_VALUE), name)
        return name

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        check_inotify(len(ranks))  # before anything is made
        check_neighbours(len(set(rank for rank in ranks) | set(n.rank for n in self.list_nodes(spec.cluster))))
        image = self.image()
        if not self.image_exists(image):
            if self.opts.get("image"):
                raise NotFoundError("local image %r does not exist" % image)
            build_image(self.podman, image, self.opts.get("debian_mirror") or DEFAULT_MIRROR, log=self.log)
        network = self.ensure_network(spec.cluster)
        addresses = self.rank_addresses(spec.cluster, network, ranks)
        created = []
        try:
            for rank in ranks:
                created.append(self._run_node(spec, rank, image, network, addresses.get(rank)))
        except CloudError:
            # all or nothing: remove what this call made before failing
            if created:
                self.podman.run("rm", "-f", "-t", "0", *created, check=False)
            raise
        return [n for n in self.list_nodes(spec.cluster) if n.name in created]

    def rank_addresses(self, cluster, network, ranks):
        """rank -> the fixed address of the node of that rank (see :func:`rank_address`); a rank whose address
        another node of the cluster holds (a node made before addresses were fixed) gets none: podman picks one."""
        try:
            info = self.podman.json("network", "inspect", network)
        except CloudError:
            return {}
        subnets = (info[0].get("subnets") or info[0].get("Subnets") or []) if info else []
        if not subnets:
            return {}
        taken = set(n.private_address for n in self.list_nodes(cluster) if n.private_address)
        found = {}
        for rank in ranks:
            address = rank_address(subnets[0].get("subnet"), subnets[0].get("gateway"), rank)
            if address and address not in taken:
                found[rank] = address
        return found

    def _run_node(self, spec, rank, image, network, address=None):
        name = node_name(spec.cluster, rank)
        args = ["run", "-d", "--name", name, "--hostname", name, "--network", network, "--systemd", "always"]
        if address:
            args += ["--ip", address]
        labels = spec.tags(rank)
        labels["aiinfra-ssh-user"] = spec.ssh_user
        if spec.instance_type:
            labels["aiinfra-instance-type"] = spec.instance_type
        labels[MARKET_LABEL] = "spot" if self.opts.get("spot") else "on_demand"
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
