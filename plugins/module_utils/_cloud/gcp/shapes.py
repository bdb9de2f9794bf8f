# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure request/response shapes of the ``gcp`` cloud: no API calls, no state, unit-tested directly."""

from __future__ import annotations

import json
import re
import uuid

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (  # noqa: F401 (UNRANKED)
    UNRANKED, CLUSTER_TAG, MANAGED_TAG, OWNER_TAG, RANK_TAG, Node, RuleSpec, node_name, ttl_minutes_of)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError

DEFAULT_ENDPOINT = "https://compute.googleapis.com/compute/v1/"
COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"
# GCP label values allow only [a-z0-9_-]: the managed-by value is spelled with '_' instead of '.'
MANAGED_LABEL_VALUE = "aiinfra_gpu_cluster"
SSH_USER_LABEL = "aiinfra-gpu-ssh-user"
MARKER = "aiinfra.gpu_cluster cluster=%s"
MAX_REQUEST_GENERATIONS = 16
# how long a start or a firewall change may take (operations awaited together)
OPERATION_TIMEOUT = 600
# uuid5 namespace of the collection's requestIds (uuid5(NAMESPACE_URL, "aiinfra.gpu_cluster/gcp"))
REQUEST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "aiinfra.gpu_cluster/gcp")

STATE_MAP = {"PROVISIONING": "pending", "STAGING": "pending", "RUNNING": "running", "REPAIRING": "pending",
             "STOPPING": "stopping", "SUSPENDING": "stopping", "TERMINATED": "stopped", "STOPPED": "stopped",
             "SUSPENDED": "stopped", "PENDING_STOP": "stopping"}
# machine families that accept a compact placement policy (groupPlacementPolicy.collocation COLLOCATED)
COMPACT_FAMILIES = frozenset(("a2", "a3", "a4", "c2", "c2d", "c3", "c3d", "c4", "c4d", "g2", "h3", "n2", "n2d", "z3"))
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9.:]{4,62}[a-z0-9]$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
IMAGE_RE = re.compile(r"(?:^|/)projects/([^/]+)/global/images/(family/)?([^/]+)$")


def zone_region(zone):
    """``us-central1-a`` -> ``us-central1``."""
    return zone.rsplit("-", 1)[0]


def machine_family(machine_type):
    return (machine_type or "").split("-", 1)[0].lower()


def supports_compact(machine_type):
    return machine_family(machine_type) in COMPACT_FAMILIES


def network_tag(cluster):
    """The network tag every node of the cluster carries; the firewall rules target it."""
    return "aiinfra-%s" % cluster


def policy_name(cluster):
    """The cluster's compact placement resource policy (one per region)."""
    return "aiinfra-%s" % cluster


def relative(link):
    """A self link (any host, any API root) as a path relative to the API root: ``projects/...``."""
    if not link:
        return link
    index = link.find("projects/")
    return link[index:] if index >= 0 else link


def last(link):
    return (link or "").rstrip("/").rsplit("/", 1)[-1]


def request_id(cluster, scope, what, payload, generation=0):
    """A requestId (a UUID, as the API requires) derived from the cluster, where and what is asked, and the request:
    the same request always gets the same id, so a retry or a re-run after a crash returns the first operation."""
    doc = json.dumps({"cluster": cluster, "scope": scope, "what": what, "payload": payload, "generation": generation},
                     sort_keys=True, default=str)
    return str(uuid.uuid5(REQUEST_NAMESPACE, doc))


def owner_label(owner):
    """``owner`` as a label value ([a-z0-9_-], <= 63): ``Alice@host.example`` -> ``alice_host_example``."""
    return re.sub(r"[^a-z0-9_-]", "_", (owner or "").lower())[:63]


def labels_for(spec, rank=None):
    """The labels of a resource of ``spec``'s cluster (user labels first, ours win), as GCP accepts them."""
    labels = spec.tags(rank)
    labels[MANAGED_TAG] = MANAGED_LABEL_VALUE
    labels[SSH_USER_LABEL] = spec.ssh_user
    if getattr(spec, "owner", ""):
        labels[OWNER_TAG] = owner_label(spec.owner)
    return labels


def is_managed(inst):
    """Made by the collection: the managed-by label is there (a resource with only our cluster label is not ours)."""
    return (inst.get("labels") or {}).get(MANAGED_TAG) == MANAGED_LABEL_VALUE


def check_labels(labels):
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(key) or not LABEL_VALUE_RE.fullmatch(str(value)):
            raise ConfigError("label %s=%s is not a valid Compute Engine label" % (key, value),
                              hint="Keys: lowercase letters, digits, '_' and '-', starting with a letter (<= 63); "
                                   "values: lowercase letters, digits, '_' and '-' (<= 63)")


def parse_image(image):
    """``(project, name, is_family)`` of an image self link or ``projects/P/global/images/[family/]NAME``."""
    match = IMAGE_RE.search(image or "")
    if not match:
        raise ConfigError("image %r is not a Compute Engine image" % (image,),
                          hint="Give projects/PROJECT/global/images/family/FAMILY (the family's newest image) or "
                               "projects/PROJECT/global/images/NAME, e.g. "
                               "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11")
    return match.group(1), match.group(3), bool(match.group(2))


def rank_from_name(name, cluster):
    """The rank encoded in a node's name ``<cluster>-<rank>``; UNRANKED for any other name."""
    prefix = cluster + "-"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return UNRANKED


def ssh_keys_value(ssh_user, public_key):
    return "%s:%s" % (ssh_user, public_key.strip()) if public_key else ""


RESERVATION_KEY = "compute.googleapis.com/reservation-name"
RESERVATION_RE = re.compile(r"^(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/reservations/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def reservation_affinity(name):
    """``reservationAffinity`` of an instance that must consume the reservation ``name``."""
    return {"consumeReservationType": "SPECIFIC_RESERVATION", "key": RESERVATION_KEY, "values": [name]}


def bulk_insert_body(spec, ranks, zone, res, minimum, policy=None, reservation=None):
    """The ``instances.bulkInsert`` body for ``ranks`` of ``spec``'s cluster in ``zone``.

    ``res`` is what preflight resolved: ``machine_type``, ``gpus`` (built-in or attached), ``image`` (self link),
    ``network`` / ``subnetwork`` (paths by region), and the options ``accelerators``, ``spot``,
    ``root_volume_size``. Names carry the ranks (bulkInsert cannot label instances one by one).
    """
    labels = labels_for(spec)
    # only the cluster's own key logs in: project-wide SSH keys (anyone's with project metadata access) are refused
    metadata = [{"key": "enable-oslogin", "value": "FALSE"}, {"key": "block-project-ssh-keys", "value": "TRUE"}]
    if spec.ssh_public_key:
        metadata.insert(0, {"key": "ssh-keys", "value": ssh_keys_value(spec.ssh_user, spec.ssh_public_key)})
    disk = {"sourceImage": res["image"], "labels": dict(labels)}
    if res.get("root_volume_size"):
        disk["diskSizeGb"] = str(res["root_volume_size"])
    nic = {"network": res["network"]}
    if res.get("public_ip", True):
        nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    subnet = (res.get("subnetworks") or {}).get(zone_region(zone))
    if subnet:
        nic["subnetwork"] = subnet
    props = {
        "machineType": res["machine_type"],
        "labels": labels,
        "tags": {"items": [network_tag(spec.cluster)]},
        "metadata": {"items": metadata},
        "disks": [{"boot": True, "autoDelete": True, "type": "PERSISTENT", "initializeParams": disk}],
        "networkInterfaces": [nic],
    }
    scheduling = {}
    if res.get("gpus"):
        # guest accelerators cannot live-migrate: the API refuses a GPU VM without TERMINATE
        scheduling.update(onHostMaintenance="TERMINATE", automaticRestart=not res.get("spot"))
    if res.get("spot"):
        scheduling.update(provisioningModel="SPOT", instanceTerminationAction="DELETE", automaticRestart=False,
                          onHostMaintenance="TERMINATE")
    ttl = int(getattr(spec, "ttl_minutes", 0) or 0)
    if ttl:
        # "If specified, the instance termination action will be performed at the end of the run duration"
        scheduling.update(maxRunDuration={"seconds": str(ttl * 60)}, instanceTerminationAction="DELETE")
    if scheduling:
        props["scheduling"] = scheduling
    if res.get("accelerators"):
        props["guestAccelerators"] = [{"acceleratorType": a["type"], "acceleratorCount": int(a["count"])}
                                      for a in res["accelerators"]]
    if reservation:
        props["reservationAffinity"] = reservation_affinity(reservation)
    if policy:
        # "Resource policies (names, not URLs) applied to instances created from these properties"
        props["resourcePolicies"] = [last(policy)]
    return {
        "count": str(len(ranks)),
        "minCount": str(minimum),
        "perInstanceProperties": dict((node_name(spec.cluster, r), {}) for r in ranks),
        "instanceProperties": props,
    }


def compact_policy_body(cluster, region):
    return {
        "name": policy_name(cluster),
        "region": region,
        "description": MARKER % cluster + ": compact placement of the cluster's nodes",
        "groupPlacementPolicy": {"collocation": "COLLOCATED"},
    }


def node_from_instance(inst, cluster):
    labels = inst.get("labels") or {}
    nic = (inst.get("networkInterfaces") or [{}])[0]
    private = nic.get("networkIP") or ""
    public = ""
    for access in nic.get("accessConfigs") or []:
        if access.get("natIP"):
            public = access["natIP"]
            break
    rank = rank_from_name(inst["name"], cluster)
    if rank == UNRANKED and str(labels.get(RANK_TAG, "")).isdigit():
        rank = int(labels[RANK_TAG])
    status = inst.get("status", "UNKNOWN")
    return Node(
        rank=rank,
        name=inst["name"],
        id=str(inst.get("id") or inst["name"]),
        state=STATE_MAP.get(status, status.lower()),
        private_address=private,
        public_address=public,
        ssh_host=public or private,
        ssh_port=22,
        ssh_user=labels.get(SSH_USER_LABEL, ""),
        instance_type=last(inst.get("machineType")),
        zone=last(inst.get("zone")),
        labels=dict((k, v) for k, v in labels.items() if not k.startswith("aiinfra-")),
        launch_time=inst.get("lastStartTimestamp") or inst.get("creationTimestamp") or "",
        market="spot" if (inst.get("scheduling") or {}).get("provisioningModel") == "SPOT" else "on_demand",
        owner=labels.get(OWNER_TAG, ""), ttl_minutes=ttl_minutes_of(labels),
    )


def instance_filter(cluster):
    return "labels.%s = %s" % (CLUSTER_TAG, cluster)


# -- firewall rules -----------------------------------------------------------
def _ports_text(rule):
    if rule.protocol in ("all", "icmp") or rule.port_from < 0:
        return ""
    if rule.port_from == rule.port_to:
        return str(rule.port_from)
    return "%d-%d" % (rule.port_from, rule.port_to)


def firewall_name(cluster, rule):
    """The name of the GCP firewall rule that carries ``rule`` (several CIDRs share one rule)."""
    if rule.source == "self":
        return "aiinfra-%s-internal" % cluster
    return "aiinfra-%s-%s%s%s" % (cluster, rule.protocol, _ports_text(rule), "-v6" if ":" in rule.source else "")


def firewall_name_re(cluster):
    return re.compile(r"^aiinfra-%s-(internal|(tcp|udp|icmp|all)[0-9-]*?(-v6)?)$" % re.escape(cluster))


def is_implied(rule):
    """Egress to anywhere (or to the cluster itself) is allowed by every VPC network's implied egress rule."""
    return rule.direction == "egress" and rule.protocol == "all" and rule.source in ("0.0.0.0/0", "self")


def firewall_bodies(cluster, rules, network):
    """``{name: Firewall body}`` for the ingress ``rules`` (:class:`RuleSpec`); egress must be implied."""
    bodies = {}
    tag = network_tag(cluster)
    for rule in rules:
        if is_implied(rule):
            continue
        if rule.direction != "ingress":
            raise ConfigError("rule %s is not supported on cloud gcp" % rule,
                              hint="Compute Engine allows all egress (the implied rule); only ingress rules are made")
        name = firewall_name(cluster, rule)
        body = bodies.setdefault(name, {
            "name": name, "network": network, "direction": "INGRESS", "priority": 1000,
            "description": MARKER % cluster + ": " + (rule.description or str(rule)),
            "targetTags": [tag],
            "allowed": [allowed_of(rule)],
        })
        if rule.source == "self":
            body["sourceTags"] = [tag]
        else:
            body.setdefault("sourceRanges", [])
            if rule.source not in body["sourceRanges"]:
                body["sourceRanges"].append(rule.source)
    return bodies


def allowed_of(rule):
    allowed = {"IPProtocol": rule.protocol}
    ports = _ports_text(rule)
    if ports:
        allowed["ports"] = [ports]
    return allowed


def rules_from_firewall(fw, cluster):
    """The :class:`RuleSpec` list one GCP firewall rule stands for."""
    out = []
    tag = network_tag(cluster)
    sources = list(fw.get("sourceRanges") or [])
    if tag in (fw.get("sourceTags") or []):
        sources.append("self")
    description = (fw.get("description") or "").split(": ", 1)[-1]
    for allowed in fw.get("allowed") or []:
        protocol = allowed.get("IPProtocol", "all")
        port_ranges = allowed.get("ports") or [""]
        for ports in port_ranges:
            if protocol in ("all", "icmp") or not ports:
                low = high = -1
            elif "-" in ports:
                low, high = [int(p) for p in ports.split("-", 1)]
            else:
                low = high = int(ports)
            for source in sources:
                out.append(RuleSpec("ingress", protocol, low, high, source, description))
    return out
