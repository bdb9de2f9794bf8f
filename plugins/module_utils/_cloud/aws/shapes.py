# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure request/response shapes of the ``aws`` cloud: no API calls, no state, unit-tested directly."""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (  # noqa: F401 (UNRANKED)
    UNRANKED, OWNER_TAG, RANK_TAG, Node, RuleSpec, node_name, ttl_minutes_of)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError

RANKS_TAG = "aiinfra-gpu-ranks"
SSH_USER_TAG = "aiinfra-gpu-ssh-user"
LIVE_STATES = ("pending", "running", "stopping", "stopped")
STATE_MAP = {"pending": "pending", "running": "running", "stopping": "stopping", "stopped": "stopped",
             "shutting-down": "terminating", "terminated": "terminated"}
AMI_ID_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
RESERVATION_ID_RE = re.compile(r"^cr-[0-9a-f]{8,17}$")
RESERVATION_GROUP_RE = re.compile(r"^arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:[0-9]{12}:group/[A-Za-z0-9_.-]{1,128}$")
ROOT_VOLUME_TYPES = ("gp3", "gp2", "io1", "io2")
MAX_TOKEN_GENERATIONS = 16


def tag_list(tags):
    return [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]


def tag_dict(tags):
    return dict((t["Key"], t["Value"]) for t in tags or [])


def format_ranks(ranks):
    """``[0, 1, 2, 3, 7]`` -> ``"0-3,7"`` (the ranks a reservation was launched for, in launch order)."""
    ranks = list(ranks)
    parts = []
    i = 0
    while i < len(ranks):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] == ranks[j] + 1:
            j += 1
        parts.append(str(ranks[i]) if i == j else "%d-%d" % (ranks[i], ranks[j]))
        i = j + 1
    return ",".join(parts)


def parse_ranks(text):
    """Inverse of :func:`format_ranks`; ``[]`` for anything malformed."""
    out = []
    try:
        for part in (text or "").split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                out.extend(range(int(low), int(high) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        return []
    return out


def rank_of(tags, launch_index):
    """A node's rank: its rank tag, else the reservation's ranks at its launch index, else UNRANKED."""
    if tags.get(RANK_TAG, "").isdigit():
        return int(tags[RANK_TAG])
    ranks = parse_ranks(tags.get(RANKS_TAG))
    if 0 <= (launch_index or 0) < len(ranks):
        return ranks[launch_index or 0]
    return UNRANKED


def client_token(cluster, ranks, request, generation=0):
    """The RunInstances ClientToken: a hash of the cluster id, the ranks and the whole request.

    The same request for the same ranks always gets the same token (a retry, or a re-run after the
    controller was killed, gets EC2's original reservation back). ``generation`` moves on only when EC2
    says the token's instances were terminated since (a cluster torn down and made again).
    """
    doc = json.dumps({"cluster": cluster, "ranks": list(ranks), "request": request, "generation": generation},
                     sort_keys=True, default=str)
    return "aiinfra-%s" % hashlib.sha256(doc.encode("utf-8")).hexdigest()[:48]


def efa_layout(type_info):
    """EFA interfaces for ``type_info`` (a DescribeInstanceTypes entry), as ``(card, device, kind)``.

    ``efa`` (EFA + ENA, carries the node's IP) on network card 0, then ``efa-only`` on each further card
    as the type allows (plain ``efa`` where a card has no efa-only), up to MaximumEfaInterfaces.
    ``[]`` when the type has no EFA.
    """
    net = (type_info or {}).get("NetworkInfo") or {}
    if not net.get("EfaSupported"):
        return []
    limit = ((net.get("EfaInfo") or {}).get("MaximumEfaInterfaces")) or 1
    cards = sorted(net.get("NetworkCards") or [], key=lambda c: c.get("NetworkCardIndex", 0))
    layout = [(0, 0, "efa")]
    for card in cards:
        index = card.get("NetworkCardIndex", 0)
        if index == 0 or len(layout) >= limit:
            continue
        kinds = card.get("InterfaceTypes") or ["interface", "efa"]
        if "efa-only" in kinds:
            layout.append((index, 1, "efa-only"))
        elif "efa" in kinds:
            layout.append((index, 1, "efa"))
    return layout


def newest_image(images, architectures=None):
    """The newest available image (CreationDate, then name) of ``images``, of one of ``architectures``."""
    usable = [i for i in images if i.get("State", "available") == "available"
              and (not architectures or i.get("Architecture") in architectures)]
    if not usable:
        return None
    return max(usable, key=lambda i: (i.get("CreationDate") or "", i.get("Name") or "", i.get("ImageId")))


def image_root_size(image):
    """Size (GiB) of the root volume's snapshot of an image (DescribeImages entry); 0 when unknown."""
    root = image.get("RootDeviceName")
    for mapping in image.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == root and (mapping.get("Ebs") or {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return 0


def plan_placements(placements, instance_type, subnets, default_subnets, existing_zone=None):
    """The ordered list of places to try, each ``{subnet_id, availability_zone, instance_type, vpc_id}``.

    ``placements`` is the user's list (``subnet_id``, ``availability_zone``, ``instance_type``, any may be
    unset); ``subnets`` maps subnet id -> ``{availability_zone, vpc_id}``; ``default_subnets`` maps AZ ->
    ``{subnet_id, vpc_id}`` (the default VPC's). An entry with neither subnet nor AZ stands for every AZ
    that has a default subnet, in AZ order; no entries at all means one such entry. When the cluster
    already has nodes (``existing_zone``) new ones go to the same AZ: one AZ per cluster (a cluster
    placement group is bound to one, and NCCL traffic must not cross AZs).
    """
    tries = []
    for entry in placements or [{}]:
        entry = entry or {}
        itype = entry.get("instance_type") or instance_type
        subnet_id, zone = entry.get("subnet_id"), entry.get("availability_zone")
        if subnet_id:
            info = subnets[subnet_id]
            if zone and zone != info["availability_zone"]:
                raise ConfigError("placement subnet %s is in %s, not %s" % (subnet_id, info["availability_zone"], zone),
                                  hint="Give subnet_id or availability_zone, or both that agree")
            expanded = [(subnet_id, info["availability_zone"], info.get("vpc_id"))]
        elif zone:
            if zone not in default_subnets:
                raise ConfigError("there is no default subnet in availability zone %s" % zone,
                                  hint="Give the placement's subnet_id (a subnet of your VPC in %s)" % zone)
            expanded = [(default_subnets[zone]["subnet_id"], zone, default_subnets[zone].get("vpc_id"))]
        else:
            if not default_subnets:
                raise ConfigError("no placements given and the region has no default VPC",
                                  hint="List placements with the subnet_id of each subnet to try")
            expanded = [(default_subnets[z]["subnet_id"], z, default_subnets[z].get("vpc_id"))
                        for z in sorted(default_subnets)]
        for sid, az, vpc in expanded:
            trial = {"subnet_id": sid, "availability_zone": az, "instance_type": itype, "vpc_id": vpc}
            if trial not in tries:
                tries.append(trial)
    if existing_zone:
        same = [t for t in tries if t["availability_zone"] == existing_zone]
        if not same:
            raise ConfigError("the cluster's nodes are in %s but no placement is" % existing_zone,
                              hint="Add a placement in %s: a cluster's nodes stay in one availability zone"
                                   % existing_zone)
        tries = same
    return tries


def cloud_config(ssh_user, ssh_public_key=""):
    """cloud-init user data: the image's default user becomes ``ssh_user`` (it receives the EC2 key pair)."""
    lines = [
        "#cloud-config",
        "system_info:",
        "  default_user:",
        "    name: %s" % json.dumps(ssh_user),
        "    lock_passwd: true",
        "    gecos: %s" % json.dumps("aiinfra.gpu_cluster admin"),
        "    sudo: [%s]" % json.dumps("ALL=(ALL) NOPASSWD:ALL"),
        "    shell: /bin/bash",
    ]
    if ssh_public_key:
        lines += ["ssh_authorized_keys:", "  - %s" % json.dumps(ssh_public_key)]
    return "\n".join(lines) + "\n"


def key_pair_name(cluster, public_key):
    """Name of the key pair imported for ``cluster``: a new key gets a new pair, never a silent swap."""
    blob = " ".join(public_key.split()[:2])
    return "aiinfra-%s-%s" % (cluster, hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10])


def group_name(cluster):
    return "aiinfra-%s" % cluster


def node_from_instance(inst, cluster, rank=None):
    tags = tag_dict(inst.get("Tags"))
    if rank is None:
        rank = rank_of(tags, inst.get("AmiLaunchIndex", 0))
    state = (inst.get("State") or {}).get("Name", "unknown")
    private = inst.get("PrivateIpAddress") or ""
    public = inst.get("PublicIpAddress") or ""
    labels = dict((k, v) for k, v in tags.items() if not k.startswith(("aiinfra-", "aws:")) and k != "Name")
    return Node(
        rank=rank,
        name=node_name(cluster, rank) if rank != UNRANKED else tags.get("Name") or inst["InstanceId"],
        id=inst["InstanceId"],
        state=STATE_MAP.get(state, state),
        private_address=private,
        public_address=public,
        ssh_host=public or private,
        ssh_port=22,
        ssh_user=tags.get(SSH_USER_TAG, ""),
        instance_type=inst.get("InstanceType", ""),
        zone=(inst.get("Placement") or {}).get("AvailabilityZone", ""),
        labels=labels,
        launch_time=inst["LaunchTime"].isoformat() if hasattr(inst.get("LaunchTime"), "isoformat")
        else str(inst.get("LaunchTime") or ""),
        market="spot" if inst.get("InstanceLifecycle") == "spot" else "on_demand",
        owner=tags.get(OWNER_TAG, ""), ttl_minutes=ttl_minutes_of(tags),
    )


_PROTOCOLS = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp"}


def rules_from_group(group):
    """The rules of an EC2 security group (DescribeSecurityGroups entry) as :class:`RuleSpec`."""
    gid = group.get("GroupId")
    out = []
    for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
        for perm in group.get(key) or []:
            proto = str(perm.get("IpProtocol"))
            protocol = _PROTOCOLS.get(proto, proto)
            ports = (-1, -1) if protocol == "all" else (perm.get("FromPort", -1), perm.get("ToPort", -1))
            for item in perm.get("IpRanges") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], item["CidrIp"], item.get("Description", "")))
            for item in perm.get("Ipv6Ranges") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], item["CidrIpv6"],
                                    item.get("Description", "")))
            for item in perm.get("UserIdGroupPairs") or []:
                source = "self" if item.get("GroupId") == gid else "sg:%s" % item.get("GroupId")
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], source, item.get("Description", "")))
            for item in perm.get("PrefixListIds") or []:
                out.append(RuleSpec(direction, protocol, ports[0], ports[1], "pl:%s" % item["PrefixListId"],
                                    item.get("Description", "")))
    return out


def permissions_from_rules(rules, group_id, descriptions=True):
    """EC2 IpPermissions for ``rules`` (all of one direction); ``self`` becomes ``group_id``."""
    out = []
    for rule in rules:
        perm = {"IpProtocol": "-1" if rule.protocol == "all" else rule.protocol}
        if rule.protocol != "all":
            perm["FromPort"] = rule.port_from
            perm["ToPort"] = rule.port_to
        extra = {"Description": rule.description} if descriptions and rule.description else {}
        source = rule.source
        if source == "self" or source.startswith("sg:"):
            perm["UserIdGroupPairs"] = [dict(GroupId=group_id if source == "self" else source[3:], **extra)]
        elif source.startswith("pl:"):
            perm["PrefixListIds"] = [dict(PrefixListId=source[3:], **extra)]
        elif ":" in source:
            perm["Ipv6Ranges"] = [dict(CidrIpv6=source, **extra)]
        else:
            perm["IpRanges"] = [dict(CidrIp=source, **extra)]
        out.append(perm)
    return out


def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]
