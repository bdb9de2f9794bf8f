# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provider interface every cloud implements, and what all clouds share.

A *cluster* is a set of nodes carrying one cluster id (a tag or label on every
resource the collection creates), each with a stable ``rank``. The module never
talks to a cloud directly: it builds a :class:`NodeSpec`, asks the provider for
the cluster's nodes, computes a :class:`Plan` with :func:`plan_nodes` (a pure
function) and hands the plan back to the provider.
"""

from __future__ import annotations

import abc
import base64
import binascii
import calendar
import re
import struct
import time
from dataclasses import asdict, dataclass, field

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CapacityError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.retry import wait_until

# The tag / label keys every provider writes. GCP labels allow only [a-z0-9_-]
# in keys, so the same key spelling is used everywhere.
CLUSTER_TAG = "aiinfra-gpu-cluster"
RANK_TAG = "aiinfra-gpu-rank"
MANAGED_TAG = "aiinfra-managed-by"
MANAGED_VALUE = "aiinfra.gpu_cluster"
# the rank of a node whose rank tag is missing or unreadable (sorts after every real rank)
UNRANKED = 1000000
# who made the cluster: the instance module's ``owner`` (user@host, or AWX's launching user)
OWNER_TAG = "aiinfra-owner"
# the node's time to live in whole minutes (a GCE label value allows no "."), from its launch: its deadline
TTL_TAG = "aiinfra-ttl-minutes"
OWNER_MAX = 128

# One rule for cluster ids, accepted by every cloud once a "-<rank>" suffix is
# appended: GCP resource names ([a-z]([-a-z0-9]*[a-z0-9])?, <= 63), Azure VM
# names (<= 64), EC2 tag values, podman container and network names.
CLUSTER_ID_RE = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
CLUSTER_ID_MAX = 40

SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass
class NodeSpec:
    """What every node of a cluster should look like. ``options`` holds the cloud's own settings."""

    cluster: str
    ssh_public_key: str = ""
    ssh_user: str = "gpuadmin"
    instance_type: str = ""
    image: str = ""
    labels: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    owner: str = ""
    # no forgotten cluster: minutes a node lives from its launch (0: no limit) - the cloud deletes it then where it
    # can (gcp maxRunDuration); self_stop: the node may stop itself (the gpu_cluster role's lifetime timer), and a
    # node that stops itself is deleted where the cloud can say so (aws InstanceInitiatedShutdownBehavior)
    ttl_minutes: int = 0
    self_stop: bool = False

    def tags(self, rank=None):
        """The tags/labels a resource of this cluster carries (user labels first, ours win)."""
        tags = dict(self.labels)
        tags[CLUSTER_TAG] = self.cluster
        tags[MANAGED_TAG] = MANAGED_VALUE
        if self.owner:
            tags[OWNER_TAG] = self.owner
        if self.ttl_minutes:
            tags[TTL_TAG] = str(int(self.ttl_minutes))
        if rank is not None:
            tags[RANK_TAG] = str(rank)
        return tags


@dataclass
class Node:
    """One node as the cloud reports it."""

    rank: int
    name: str
    id: str
    state: str = "unknown"
    private_address: str = ""
    public_address: str = ""
    ssh_host: str = ""
    ssh_port: int = 22
    ssh_user: str = ""
    instance_type: str = ""
    zone: str = ""
    labels: dict = field(default_factory=dict)
    launch_time: str = ""  # ISO 8601, as the cloud reports it (what a node has cost is counted from it)
    market: str = ""  # on_demand or spot, where the cloud says
    owner: str = ""  # the aiinfra-owner tag: who made the node ("" on nodes made before owners were recorded)
    ttl_minutes: int = 0  # the aiinfra-ttl-minutes tag (0: no time limit)

    @property
    def deadline(self):
        """When the node's time to live ends (ISO 8601, UTC), from its launch time and its TTL tag; "" without."""
        return deadline_of(self.launch_time, self.ttl_minutes)

    def to_dict(self):
        return dict(asdict(self), deadline=self.deadline, hostvars=self.hostvars())

    def hostvars(self):
        """This node's host variables in an inventory: how Ansible logs in, and what the playbooks read about it.
        The one mapping from a node to its variables: the inventory plugin sets them, and the instance modules
        return them (``nodes[].hostvars``) for the role's add_nodes and recovery."""
        return {
            "ansible_host": self.ssh_host,
            "ansible_port": self.ssh_port,
            "ansible_user": self.ssh_user,
            "gpu_cluster_rank": self.rank,
            "gpu_cluster_private_address": self.private_address,
            "gpu_cluster_node_id": self.id,
            "gpu_cluster_zone": self.zone,
            "gpu_cluster_instance_type": self.instance_type,
            "gpu_cluster_state": self.state,
            "gpu_cluster_launch_time": self.launch_time,
            "gpu_cluster_deadline": self.deadline,
        }


class Launch(list):
    """The nodes :meth:`Provider.create_nodes` made (a list), with ``info``: where they landed and what was
    skipped on the way (merged into the module's ``cluster`` result by :meth:`Provider.describe`)."""

    def __init__(self, nodes=(), info=None):
        super(Launch, self).__init__(nodes)
        self.info = dict(info or {})


@dataclass
class Prepared:
    """What :meth:`Provider.preflight_create` resolved for a launch, handed to :meth:`Provider.create_nodes`.

    ``tries``: the placements to try, in order, each a dict of the cloud's keys (``availability_zone``,
    ``subnet_id`` and ``instance_type`` on aws; ``location`` and ``zone`` on azure; ``zone`` on gcp); ``skipped``: the
    placements left out before any call, each with its ``error``; ``facts``: what else the cloud looked up (image,
    key pair, network...), read as ``prepared["image"]``.
    """

    tries: list
    skipped: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.facts[key]

    def get(self, key, default=None):
        return self.facts.get(key, default)


_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?")


def epoch_of(text):
    """Unix time of an ISO 8601 time as the clouds write launch times (``2026-12-01T00:40:01.000Z``,
    ``2026-12-01T00:40:01.123-08:00``, podman's ``2026-12-01 00:40:01.5 +0000 UTC``); ``None`` when unreadable."""
    match = _ISO_RE.match(str(text or "").strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    offset = 0
    zone = match.group(7)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset


def deadline_of(launch_time, ttl_minutes):
    """``launch_time`` + ``ttl_minutes`` as ISO 8601 UTC (``...Z``); "" without a TTL or a readable launch time."""
    start = epoch_of(launch_time)
    if not ttl_minutes or start is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + int(ttl_minutes) * 60))


def ttl_minutes_of(tags):
    value = str((tags or {}).get(TTL_TAG) or "")
    return int(value) if value.isdigit() else 0


def fit_reservation(tries, name, fits, free, needed, where):
    """Settle which placements launch into a reservation, before anything is created.

    ``tries``: the placements in order; ``fits(trial)``: ``None`` when the reservation can serve the placement (same
    instance type and zone), else why not; ``free``: its free instances; ``needed``: how many the launch needs;
    ``where``: the reservation's type and zone, for the messages. The placements it fits get ``reservation: True`` and
    come first; the others follow in their order and launch outside it. A reservation that fits no placement is a :class:`ConfigError`; one with fewer than
    ``needed`` free is one too, unless other placements can take the nodes - then its placements are skipped like a
    stockout (and a reservation found full at launch fails over to the next placement the same way).
    Returns ``(tries, skipped)``.
    """
    marked, misfits = [], []
    for trial in tries:
        why = fits(trial)
        if why:
            misfits.append(why)
        marked.append(dict(trial, reservation=not why))
    inside = [t for t in marked if t["reservation"]]
    if not inside:
        raise ConfigError("reservation %s (%s) fits none of the placements: %s" % (name, where, "; ".join(misfits)),
                          hint="Launch the reservation's instance type in its zone (instance_type, placements), or "
                               "name a reservation of the type and zone you launch")
    if free < needed:
        outside = [t for t in marked if not t["reservation"]]
        why = "reservation %s has %d free instance(s), %d needed" % (name, free, needed)
        if not outside:
            raise ConfigError(why, hint="Launch fewer nodes, free instances of the reservation, or add placements "
                                        "outside it to fall back to")
        return outside, [dict(t, error=why) for t in inside]
    return inside + [t for t in marked if not t["reservation"]], []


@dataclass(frozen=True)
class RuleSpec:
    """One firewall rule. ``source`` is a CIDR (IPv4 or IPv6), ``self`` (members of the cluster's own
    group) or a cloud reference such as ``sg:<id>``; ``protocol`` is ``tcp``, ``udp``, ``icmp`` or ``all``
    (ports are ignored for ``all``)."""

    direction: str = "ingress"
    protocol: str = "tcp"
    port_from: int = -1
    port_to: int = -1
    source: str = ""
    description: str = field(default="", compare=False)

    def to_dict(self):
        return asdict(self)

    def __str__(self):
        if self.protocol == "all":
            ports = ""
        elif self.port_from == self.port_to:
            ports = ":%d" % self.port_from
        else:
            ports = ":%d-%d" % (self.port_from, self.port_to)
        return "%s %s%s %s %s" % (self.direction, self.protocol, ports, "from" if self.direction == "ingress" else "to",
                                  self.source)


@dataclass
class Plan:
    """What reconciling a cluster to ``count`` nodes will do."""

    keep: list
    create: list
    delete: list
    replace: list = field(default_factory=list)  # nodes deleted to be created again under the same rank

    @property
    def changed(self):
        return bool(self.create or self.delete or self.replace)

    def to_dict(self):
        return {
            "keep": [n.rank for n in self.keep],
            "create": list(self.create),
            "delete": [n.rank for n in self.delete],
            "replace": [n.rank for n in self.replace],
        }


def plan_nodes(existing, count, replace=()):
    """Reconcile ``existing`` nodes to ``count``: ranks 0..count-1 must exist.

    Missing ranks are created (the next ranks when scaling up, or holes left by
    a node that disappeared); ranks >= count are deleted, highest first. A rank
    held by two nodes (never made by us, but possible by hand) keeps the oldest
    id ordering and deletes the extra so ranks stay unique.

    ``replace``: ranks whose node is deleted and created again (a node lost, broken or preempted), whatever
    its state; a named rank without a node is simply created. The other ranks keep their nodes.
    """
    if count < 0:
        raise ConfigError("count must be >= 0, got %s" % count)
    replace = sorted(set(int(r) for r in replace or ()))
    bad = [r for r in replace if r < 0 or r >= count]
    if bad:
        raise ConfigError("replace names rank(s) %s, but the cluster's ranks are 0..%d (count %d)"
                          % (", ".join(str(r) for r in bad), count - 1, count),
                          hint="Name ranks of the cluster's nodes (each node's rank is in the instance module's "
                               "nodes, and the inventory's gpu_cluster_rank)")
    by_rank = {}
    extra = []
    for node in sorted(existing, key=lambda n: (n.rank, n.id)):
        if node.rank in by_rank:
            extra.append(node)
        else:
            by_rank[node.rank] = node
    replaced = [by_rank[r] for r in replace if r in by_rank]
    keep = [by_rank[r] for r in sorted(by_rank) if r < count and r not in replace]
    delete = sorted([n for r, n in by_rank.items() if r >= count] + extra, key=lambda n: -n.rank)
    create = [r for r in range(count) if r not in by_rank or r in replace]
    return Plan(keep=keep, create=create, delete=delete, replace=replaced)


def node_name(cluster, rank):
    return "%s-%d" % (cluster, rank)


def validate_cluster_id(cluster):
    if not isinstance(cluster, str) or not CLUSTER_ID_RE.fullmatch(cluster or ""):
        raise ConfigError(
            "cluster id %r is not accepted by every cloud" % (cluster,),
            hint="Use 1-%d characters: lowercase letters, digits and '-', starting with a letter "
                 "and not ending with '-' (e.g. 'llm-train-01')" % CLUSTER_ID_MAX,
        )
    return cluster


def validate_owner(owner):
    """``owner`` (the aiinfra-owner tag): 1-128 printable characters, no leading/trailing space."""
    if not isinstance(owner, str) or not owner or len(owner) > OWNER_MAX or owner != owner.strip() \
            or not owner.isprintable():
        raise ConfigError("owner %r is not accepted" % (owner,),
                          hint="Use 1-%d printable characters, e.g. alice@laptop (the default: the controller's "
                               "user@host, or AWX's launching user through gpu_cluster_owner)" % OWNER_MAX)
    return owner


def validate_ssh_public_key(key):
    """Check ``key`` is one OpenSSH public key line (``type base64 [comment]``); return it stripped."""
    text = (key or "").strip()
    hint = ("Pass the public key's text, e.g. ssh_public_key: \"{{ lookup('file', '~/.ssh/id_ed25519.pub') }}\" "
            "(the .pub file, never the private key)")
    if "PRIVATE KEY" in text:
        raise ConfigError("ssh_public_key holds a private key", hint=hint)
    parts = text.split()
    if len(text.splitlines()) != 1 or len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ConfigError("ssh_public_key is not an OpenSSH public key", hint=hint)
    try:
        blob = base64.b64decode(parts[1].encode("ascii"), validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeError, ValueError):
        raise ConfigError("ssh_public_key is not an OpenSSH public key: its key data is not valid base64", hint=hint)
    if embedded != parts[0]:
        raise ConfigError("ssh_public_key says %s but its key data is %s" % (parts[0], embedded), hint=hint)
    return text


def validate_ssh_user(user):
    if not SSH_USER_RE.fullmatch(user or "") or user == "root":
        raise ConfigError("ssh_user %r is not a valid login name" % (user,),
                          hint="Use a lowercase POSIX user name other than root, e.g. 'gpuadmin'")
    return user


class Provider(abc.ABC):
    """One cloud. Each cloud is a package beside this file (``<cloud>/``: errors, shapes, provider, firewall).

    A provider is constructed with the module's (or inventory plugin's) cloud options; it must not touch the
    network in ``__init__``. It keeps no state between calls that changes what a later call does: what one
    step learns is returned and handed to the next step by :mod:`reconcile` (``existing`` nodes, the
    ``prepared`` launch, the ``launch`` result). Every method reconcile calls is declared here.
    """

    name = "abstract"
    #: the cloud's declarations (:class:`.options.Cloud`): the options it reads; another cloud's must be unset.
    cloud = None

    def __init__(self, options=None, log=None):
        self.opts = dict(options or {})
        self.log = log or (lambda msg: None)

    # -- checks before anything is created ---------------------------------
    def preflight(self, spec):
        """Raise :class:`ConfigError` / :class:`NotFoundError` if ``spec`` cannot work here.

        Called before any resource is created; must be read-only and should need no API call.
        """

    def preflight_create(self, spec, ranks, existing=(), check_mode=False):
        """Read-only checks that only matter when nodes of ``ranks`` are to be created (the instance type,
        image and network exist); ``existing`` are the cluster's nodes as :meth:`list_nodes` returned them.
        Called before anything is created, in check mode too, and skipped when the cluster is already
        complete, so an unchanged re-run stays cheap. In check mode a resource an earlier task of the same
        run would have created (the firewall) may be missing.

        Returns what it resolved (opaque to reconcile), handed back to :meth:`create_nodes` as ``prepared``.
        """
        return None

    def owner_value(self, owner):
        """``owner`` as this cloud stores it in the aiinfra-owner tag (GCP label values allow fewer characters)."""
        return owner

    # -- the cluster's nodes ----------------------------------------------
    @abc.abstractmethod
    def list_nodes(self, cluster):
        """All live nodes carrying both the cluster id and the managed-by tag, as :class:`Node`, any order."""

    def create_nodes(self, spec, ranks, existing=(), prepared=None, timeout=600):
        """Create nodes for ``ranks`` (all or nothing where the cloud allows) next to ``existing``, with what
        :meth:`preflight_create` returned (``None``: resolve it now), waiting at most ``timeout`` seconds for the
        cloud to accept them (not for them to boot: that is :meth:`wait_ready`). Return them: a list, or a
        :class:`Launch` carrying where they landed.

        The failover, for every cloud that has placements: ``prepared.tries`` in order; a :class:`CapacityError` in
        one moves on to the next (after :meth:`_after_capacity_error`); the first that takes the nodes is the
        result's ``landed``, the ones that did not its ``failover``; when none does, one capacity error names them
        all. What a cloud does per placement is :meth:`_launch_in`.
        """
        ranks = list(ranks)
        prepared = prepared or self.preflight_create(spec, ranks, existing)
        state = self._before_launch(spec, ranks, existing, prepared, timeout)
        minimum = self.minimum_count(ranks, existing)
        attempts = []
        for trial in prepared.tries:
            try:
                nodes, landed = self._launch_in(spec, ranks, trial, prepared, minimum, state)
            except CapacityError as exc:
                attempts.append(dict(trial, error=str(exc)))
                self.log("%s: %s; trying the next placement" % (self.name, exc))
                self._after_capacity_error(spec, ranks, trial, state)
                continue
            info = {"landed": landed}
            failover = attempts + (list(prepared.skipped) if self.report_skipped else [])
            if failover:
                info["failover"] = failover
            return Launch(nodes, info)
        advice = "other %s" % self.placement_kinds
        raise CapacityError(
            "no placement had capacity for %d x %s" % (len(ranks), self._capacity_what(spec, prepared)),
            hint="Tried, in order: %s. Add placements (%s)%s or retry later" % (
                "; ".join(self._describe_try(a) for a in attempts + list(prepared.skipped)), advice,
                ", set min_count to accept fewer nodes," if "min_count" in self.cloud.names else ""))

    # -- the failover's steps (clouds that launch through create_nodes' failover) ---
    #: what a placement is, in the capacity error's advice ("Add placements (other ...)")
    placement_kinds = "placements"
    #: whether the placements skipped before any call are part of the result's ``failover``
    report_skipped = False

    def check_min_count(self):
        """Offline check of ``min_count`` (clouds that take it call this from :meth:`preflight`)."""
        if self.opts.get("min_count") is not None and self.opts["min_count"] < 1:
            raise ConfigError("min_count must be at least 1, got %d" % self.opts["min_count"])

    def minimum_count(self, ranks, existing=()):
        """How many of ``ranks`` the launch must make at least: all, or with ``min_count`` what brings the cluster
        (its other ranked nodes in ``existing`` counted) to ``min_count`` (at least one)."""
        min_count = self.opts.get("min_count")
        if not min_count:
            return len(ranks)
        kept = set(n.rank for n in existing or () if n.rank != UNRANKED) - set(ranks)
        return min(len(ranks), max(1, min_count - len(kept)))

    def _before_launch(self, spec, ranks, existing, prepared, timeout):
        """What is made once before the first placement is tried (a key pair, a resource group); returns the
        state handed to every :meth:`_launch_in` (by default the deadline)."""
        return {"timeout": timeout}

    def _launch_in(self, spec, ranks, trial, prepared, minimum, state):
        """Launch ``ranks`` in placement ``trial``; return ``(nodes, landed)`` (``landed``: where, for the result)
        or raise :class:`CapacityError` to move on to the next placement."""
        raise NotImplementedError("cloud %s launches no nodes through the failover" % self.name)

    def _after_capacity_error(self, spec, ranks, trial, state):
        """Clean up after a placement that had no capacity, before the next is tried."""

    def _capacity_what(self, spec, prepared):
        """The instance type(s) named by the capacity error."""
        return spec.instance_type

    def _describe_try(self, attempt):
        """One tried or skipped placement, in the capacity error's hint."""
        return "%s: %s" % (" ".join(str(v) for k, v in sorted(attempt.items()) if k != "error" and v), attempt["error"])

    @abc.abstractmethod
    def delete_nodes(self, cluster, nodes, wait=True, timeout=600):
        """Delete ``nodes`` (of ``cluster``)."""

    def start_nodes(self, cluster, nodes):
        """Start stopped ``nodes`` (reconcile does this for kept nodes found ``stopped``)."""
        raise ConfigError("cloud %r cannot start stopped nodes %s"
                          % (self.name, ", ".join(n.name for n in nodes)),
                          hint="Start them by hand, or delete them so they are created again")

    @abc.abstractmethod
    def wait_ready(self, cluster, nodes, timeout):
        """Wait until every node in ``nodes`` runs and accepts SSH; return fresh :class:`Node` objects."""

    def _wait_running(self, cluster, nodes, timeout, key, instances, pending_state, to_node, interval=1.0):
        """Poll until every node in ``nodes`` runs, within ``timeout``; their fresh :class:`Node` objects.

        ``key(node)``: what the cloud lists it under (id or name); ``instances()``: {key: the cloud's record} of the
        cluster; ``pending_state(key, rank, record)``: ``None`` once the node runs, else its state (``record`` is
        ``None`` when the cloud does not list it), or raise :class:`CloudError` when it cannot come up any more;
        ``to_node(key, rank, record)``: the running node.
        """
        want = dict((key(n), n.rank) for n in nodes)
        if not want:
            return []
        pending = {}

        def ready():
            found = instances()
            pending.clear()
            for name, rank in want.items():
                state = pending_state(name, rank, found.get(name))
                if state is not None:
                    pending[name] = state
            if pending:
                return None
            return [to_node(name, rank, found[name]) for name, rank in want.items()]
        ready.pending = lambda: ", ".join("%s (%s)" % kv for kv in sorted(pending.items()))
        return wait_until(ready, timeout, interval=interval, what="%d node(s) of %s to run" % (len(want), cluster),
                          sleep=getattr(self, "sleep", time.sleep))

    # -- everything else the cluster owns (networks, groups, keys) ---------
    def cluster_resources(self, cluster):
        """Non-node resources carrying the cluster id, as a list of ``"kind/name"`` strings."""
        return []

    def delete_cluster_resources(self, cluster, timeout=600):
        """Delete what :meth:`cluster_resources` lists. Return what was deleted."""
        return []

    def kept_resources(self, cluster):
        """What a teardown of ``cluster`` leaves alone, as ``"kind/name (why)"`` strings: resources carrying the
        cluster id but not the managed-by tag (the collection did not make them), and on Azure the cluster's
        resource group when it holds anything else. Read-only."""
        return []

    def describe(self, nodes=None, prepared=None, launch=None):
        """Where the cluster lives, for the module's result (region, network, ...): from the cluster's
        ``nodes``, the ``prepared`` launch and the ``launch`` result of this call, when there were any."""
        info = {"cloud": self.name}
        if launch is not None:
            info.update(getattr(launch, "info", None) or {})
        return info

    # -- the cluster's firewall (clouds that have one) ---------------------
    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None):
        """Reconcile the cluster's firewall to ``rules`` (:class:`RuleSpec`); extra rules go only with ``purge``.

        Returns a dict with ``changed``, ``added``, ``removed``, ``rules`` and the firewall's ``id``/``name``.
        """
        raise ConfigError("the firewall is not supported on cloud %r" % self.name,
                          hint="Skip aiinfra.gpu_cluster.firewall for this cloud (the local cloud's nodes sit on "
                               "a private podman network of their own)")

    def delete_firewall(self, cluster, check_mode=False):
        """Delete the cluster's firewall. Returns a dict with ``changed`` and ``deleted``."""
        raise ConfigError("the firewall is not supported on cloud %r" % self.name,
                          hint="Skip aiinfra.gpu_cluster.firewall for this cloud")


def sort_nodes(nodes):
    return sorted(nodes, key=lambda n: n.rank)
