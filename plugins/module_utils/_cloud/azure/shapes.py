# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure builders of Azure Resource Manager request bodies and readers of its answers (no SDK, no network).

Bodies are plain dicts in ARM's wire format (camelCase, ``properties`` envelopes): the SDKs send them as they
are, and the test double checks them against the SDKs' own model definitions.
"""

from __future__ import annotations

import fnmatch
import re
import uuid

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (
    CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, OWNER_TAG, RANK_TAG, Node, RuleSpec, node_name, ttl_minutes_of)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError

SSH_USER_TAG = "aiinfra-gpu-ssh-user"
# every cluster has a network of its own, so one address plan serves all of them
VNET_PREFIX = "10.42.0.0/16"
SUBNET_PREFIX = "10.42.0.0/16"
SUBNET_NAME = "nodes"
LOCATION_RE = re.compile(r"^[a-z][a-z0-9]{1,39}$")
RG_RE = re.compile(r"^[-\w._()]{1,89}[-\w_()]$")
SUBNET_ID_RE = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network/"
                          r"virtualNetworks/([^/]+)/subnets/([^/]+)$", re.I)
ZONE_RE = re.compile(r"^[1-3]$")
# the built-in role Virtual Machine Contributor: what the VM's own identity gets on the VM for its self-stop
VM_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
# Microsoft.Authorization's API version for role assignments and the caller's permissions
AUTHORIZATION_API = "2022-04-01"
ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
CRG_ID_RE = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
                       r"capacityReservationGroups/([^/]+)$", re.I)
# NSG priorities: admin SSH from 100, cluster traffic 1000, the explicit internet deny last
PRIORITY_SSH = 100
PRIORITY_SELF = 1000
PRIORITY_EGRESS = 1100
PRIORITY_DENY = 4000
DENY_RULE = "deny-internet-inbound"
# Azure's default rules admit the whole virtual network (AllowVnetInBound, priority 65000): with a subnet of the
# user's (subnet_id) that is everybody else's VMs too. The cluster's traffic is its application security group's
# members only; the rest of the network is denied explicitly, after the collection's allows.
VNET_DENY_RULE = "deny-vnet-inbound"
PRIORITY_VNET_DENY = 4001


# -- names: one per cluster, per location where it matters ----------------------------------------------------
def default_resource_group(cluster):
    return "aiinfra-%s" % cluster


def vnet_name(cluster, location):
    return "%s-vnet-%s" % (cluster, location)


def nsg_name(cluster, location):
    return "%s-nsg-%s" % (cluster, location)


def asg_name(cluster, location):
    """The cluster's application security group in ``location``: every node's NIC there is a member, and the NSG's
    cluster rules ("self") admit its members only."""
    return "%s-asg-%s" % (cluster, location)


def asg_body(location, tags):
    return {"location": location, "tags": dict(tags), "properties": {}}


def ppg_name(cluster, location):
    return "%s-ppg-%s" % (cluster, location)


def avset_name(cluster, location):
    return "%s-avset-%s" % (cluster, location)


def nic_name(cluster, rank):
    return "%s-nic" % node_name(cluster, rank)


def pip_name(cluster, rank):
    return "%s-ip" % node_name(cluster, rank)


def resource_id(subscription, group, rtype, name):
    return "/subscriptions/%s/resourceGroups/%s/providers/%s/%s" % (subscription, group, rtype, name)


def parse_id(rid):
    """``{group, type, name}`` of an ARM resource id ('' for what it lacks)."""
    parts = (rid or "").split("/")
    out = {"group": "", "type": "", "name": parts[-1] if parts else ""}
    low = [p.lower() for p in parts]
    if "resourcegroups" in low:
        out["group"] = parts[low.index("resourcegroups") + 1]
    if "providers" in low:
        i = low.index("providers")
        out["type"] = "/".join(parts[i + 1:i + 3])
    return out


# -- input ---------------------------------------------------------------------------------------------------
def parse_image(image):
    """``publisher:offer:sku:version`` -> image reference dict; an image resource id -> ``{"id": ...}``."""
    text = (image or "").strip()
    if text.startswith("/subscriptions/"):
        return {"id": text}
    parts = text.split(":")
    if len(parts) != 4 or not all(parts):
        raise ConfigError("image %r is neither a marketplace URN nor an image id" % image,
                          hint="Use publisher:offer:sku:version (e.g. microsoft-dsvm:ubuntu-hpc:2204:latest) or "
                               "/subscriptions/.../images/NAME")
    return {"publisher": parts[0], "offer": parts[1], "sku": parts[2], "version": parts[3]}


def plan_locations(placements, location, existing_location=None):
    """The ordered ``[{location, zone}]`` to try; the cluster's location when it already has nodes."""
    tries = []
    for entry in placements or [{}]:
        entry = entry or {}
        loc = (entry.get("location") or location or "").lower().replace(" ", "")
        if not loc:
            raise ConfigError("no location given", hint="Set location (e.g. eastus) or placements: [{location: ...}]")
        if not LOCATION_RE.fullmatch(loc):
            raise ConfigError("location %r is not an Azure location name" % loc, hint="e.g. eastus, westus2")
        zone = str(entry["zone"]) if entry.get("zone") not in (None, "") else None
        if zone is not None and not ZONE_RE.fullmatch(zone):
            raise ConfigError("zone %r is not an availability zone" % zone, hint="Azure zones are 1, 2 or 3")
        trial = {"location": loc, "zone": zone}
        if trial not in tries:
            tries.append(trial)
    if existing_location:
        same = [t for t in tries if t["location"] == existing_location]
        if not same:
            raise ConfigError("the cluster's nodes are in %s but no placement is" % existing_location,
                              hint="Add a placement in %s: a cluster's nodes stay together" % existing_location)
        tries = same
    return tries


def sku_problem(skus, size, location, zone=None):
    """Why ``size`` cannot run in ``location`` (``None`` when it can), from resource SKUs."""
    for sku in skus:
        if sku.get("resourceType") != "virtualMachines" or (sku.get("name") or "").lower() != size.lower():
            continue
        if location not in [loc.lower() for loc in sku.get("locations") or []]:
            continue
        for restriction in sku.get("restrictions") or []:
            where = [v.lower() for v in (restriction.get("values") or [])]
            if restriction.get("type") == "Location" and location in where:
                return "%s is restricted in %s for this subscription (%s)" % (
                    size, location, restriction.get("reasonCode") or "restricted")
            if restriction.get("type") == "Zone" and zone:
                zones = ((restriction.get("restrictionInfo") or {}).get("zones") or [])
                if zone in zones:
                    return "%s is restricted in zone %s of %s" % (size, zone, location)
        if zone:
            info = [i for i in sku.get("locationInfo") or [] if (i.get("location") or "").lower() == location]
            if info and zone not in (info[0].get("zones") or []):
                return "%s is not offered in zone %s of %s" % (size, zone, location)
        return None
    return "%s is not offered in %s" % (size, location)


def sku_capability(skus, size, name, default=None):
    for sku in skus:
        if (sku.get("name") or "").lower() == size.lower():
            for cap in sku.get("capabilities") or []:
                if cap.get("name") == name:
                    return cap.get("value")
    return default


def sku_family(skus, size):
    for sku in skus:
        if (sku.get("name") or "").lower() == size.lower():
            return sku.get("family")
    return None


# -- bodies --------------------------------------------------------------------------------------------------
def resource_group_body(location, tags):
    return {"location": location, "tags": dict(tags)}


def vnet_body(location, tags, nsg_id=None):
    subnet = {"name": SUBNET_NAME, "properties": {"addressPrefix": SUBNET_PREFIX}}
    if nsg_id:
        subnet["properties"]["networkSecurityGroup"] = {"id": nsg_id}
    return {"location": location, "tags": dict(tags),
            "properties": {"addressSpace": {"addressPrefixes": [VNET_PREFIX]}, "subnets": [subnet]}}


def ppg_body(location, tags, zone=None):
    body = {"location": location, "tags": dict(tags), "properties": {"proximityPlacementGroupType": "Standard"}}
    if zone:
        body["zones"] = [zone]
    return body


def avset_body(location, tags, ppg_id):
    """Aligned SKU (managed disks); the proximity placement group keeps the nodes on one fabric."""
    return {"location": location, "tags": dict(tags), "sku": {"name": "Aligned"},
            "properties": {"platformFaultDomainCount": 2, "platformUpdateDomainCount": 5,
                           "proximityPlacementGroup": {"id": ppg_id}}}


def public_ip_body(location, tags, zone=None):
    body = {"location": location, "tags": dict(tags), "sku": {"name": "Standard", "tier": "Regional"},
            "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4",
                           "deleteOption": "Delete"}}
    if zone:
        body["zones"] = [zone]
    return body


def nic_body(location, tags, subnet_id, public_ip_id=None, nsg_id=None, accelerated=False, asg_id=None):
    config = {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic", "primary": True}
    if asg_id:
        config["applicationSecurityGroups"] = [{"id": asg_id}]
    if public_ip_id:
        config["publicIPAddress"] = {"id": public_ip_id}
    body = {"location": location, "tags": dict(tags),
            "properties": {"enableAcceleratedNetworking": bool(accelerated),
                           "ipConfigurations": [{"name": "primary", "properties": config}]}}
    if nsg_id:
        body["properties"]["networkSecurityGroup"] = {"id": nsg_id}
    return body


def vm_body(location, tags, size, image_ref, name, ssh_user, ssh_public_key, nic_id, zone=None, avset_id=None,
            ppg_id=None, root_volume_size=None, spot=False, reservation_group=None, identity=False):
    """A Linux VM: key-only login for ``ssh_user``, NIC and OS disk deleted with the VM; ``identity``: a
    system-assigned managed identity (the self-stop's deallocation)."""
    os_disk = {"createOption": "FromImage", "deleteOption": "Delete", "caching": "ReadWrite",
               "managedDisk": {"storageAccountType": "Premium_LRS"}}
    if root_volume_size:
        os_disk["diskSizeGB"] = int(root_volume_size)
    props = {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": dict(image_ref), "osDisk": os_disk},
        "osProfile": {
            "computerName": name,
            "adminUsername": ssh_user,
            "linuxConfiguration": {
                "disablePasswordAuthentication": True,
                "ssh": {"publicKeys": [{"path": "/home/%s/.ssh/authorized_keys" % ssh_user,
                                        "keyData": ssh_public_key}]},
            },
        },
        "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": True,
                                                                               "deleteOption": "Delete"}}]},
    }
    if avset_id:
        props["availabilitySet"] = {"id": avset_id}
    if ppg_id:
        props["proximityPlacementGroup"] = {"id": ppg_id}
    if spot:
        props.update(priority="Spot", evictionPolicy="Delete", billingProfile={"maxPrice": -1})
    if reservation_group:
        props["capacityReservation"] = {"capacityReservationGroup": {"id": reservation_group}}
    body = {"location": location, "tags": dict(tags), "properties": props}
    if identity:
        body["identity"] = {"type": "SystemAssigned"}
    if zone:
        body["zones"] = [zone]
    return body


def allows(permissions, action):
    """Whether ``permissions`` (the ``value`` of ``.../providers/Microsoft.Authorization/permissions``: each
    ``actions`` and ``notActions``, with ``*`` wildcards) grant ``action``."""
    action = action.lower()
    for perm in permissions or []:
        granted = any(fnmatch.fnmatchcase(action, a.lower()) for a in perm.get("actions") or [])
        denied = any(fnmatch.fnmatchcase(action, a.lower()) for a in perm.get("notActions") or [])
        if granted and not denied:
            return True
    return False


def role_definition_id(subscription, role):
    """A role definition GUID (or id) -> its resource id in ``subscription``."""
    role = (role or VM_CONTRIBUTOR).strip()
    if role.startswith("/"):
        return role
    return "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (subscription, role)


def role_assignment_name(vm_id, principal_id, role_id):
    """The role assignment's name (a GUID, as ARM requires), the same for the same VM, principal and role: a second
    PUT is the same assignment, not another."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "aiinfra-self-stop|%s|%s|%s" % (vm_id.lower(), principal_id,
                                                                              role_id.lower())))


def role_assignment_body(role_id, principal_id):
    """The roleAssignments PUT body. ``principalType`` spares the check against the directory that a just-made
    identity may not have reached yet (``PrincipalNotFound``)."""
    return {"properties": {"roleDefinitionId": role_id, "principalId": principal_id,
                           "principalType": "ServicePrincipal",
                           "description": "aiinfra.gpu_cluster: the node may deallocate itself (lifetime timer)"}}


# -- answers -------------------------------------------------------------------------------------------------
POWER_STATES = {"running": "running", "starting": "pending", "stopped": "stopped", "deallocated": "stopped",
                "stopping": "stopping", "deallocating": "stopping"}
PROVISIONING = {"creating": "pending", "updating": "pending", "deleting": "terminating", "failed": "failed",
                "migrating": "pending"}


def vm_state(vm):
    """running / pending / stopped / stopping / terminating / failed, from provisioningState + power state."""
    props = vm.get("properties") or {}
    prov = (props.get("provisioningState") or "").lower()
    if prov in PROVISIONING:
        return PROVISIONING[prov]
    for status in ((props.get("instanceView") or {}).get("statuses") or []):
        code = status.get("code") or ""
        if code.startswith("PowerState/"):
            return POWER_STATES.get(code.split("/", 1)[1], "pending")
    return "running" if prov == "succeeded" else "pending"


def node_from_vm(vm, cluster, nics, pips):
    """A :class:`Node` from a VM and the NICs / public IPs of its group (dicts keyed by lower-case id)."""
    tags = vm.get("tags") or {}
    props = vm.get("properties") or {}
    rank_text = tags.get(RANK_TAG, "")
    rank = int(rank_text) if rank_text.isdigit() else 1000000
    private = public = ""
    for ref in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
        nic = nics.get((ref.get("id") or "").lower())
        if nic is None:
            continue
        for conf in (nic.get("properties") or {}).get("ipConfigurations") or []:
            cprops = conf.get("properties") or {}
            private = private or cprops.get("privateIPAddress") or ""
            pip = pips.get(((cprops.get("publicIPAddress") or {}).get("id") or "").lower())
            if pip is not None:
                public = public or (pip.get("properties") or {}).get("ipAddress") or ""
    zones = vm.get("zones") or []
    labels = dict((k, v) for k, v in tags.items() if not k.startswith("aiinfra-"))
    return Node(rank=rank, name=node_name(cluster, rank) if rank != 1000000 else vm.get("name", ""),
                id=vm.get("id", ""), state=vm_state(vm), private_address=private, public_address=public,
                ssh_host=public or private, ssh_port=22,
                ssh_user=tags.get(SSH_USER_TAG) or ((props.get("osProfile") or {}).get("adminUsername") or ""),
                instance_type=(props.get("hardwareProfile") or {}).get("vmSize", ""),
                zone="%s-%s" % (vm.get("location", ""), zones[0]) if zones else vm.get("location", ""),
                labels=labels, launch_time=props.get("timeCreated") or "",
                market="spot" if props.get("priority") == "Spot" else "on_demand", owner=tags.get(OWNER_TAG, ""),
                ttl_minutes=ttl_minutes_of(tags))


def owned(resource, cluster):
    """Made by the collection for ``cluster``: both the cluster tag and the managed-by tag."""
    tags = resource.get("tags") or {}
    return tags.get(CLUSTER_TAG) == cluster and tags.get(MANAGED_TAG) == MANAGED_VALUE


# -- NSG rules <-> RuleSpec ----------------------------------------------------------------------------------
_PROTO = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "all": "*"}
_PROTO_BACK = dict((v.lower(), k) for k, v in _PROTO.items())


def _address(source):
    if source in ("0.0.0.0/0", "::/0"):
        return "Internet" if source == "0.0.0.0/0" else source
    return source


def _source_back(prefix):
    if prefix == SUBNET_PREFIX:  # what "self" was before the application security group (read back the same)
        return "self"
    if prefix in ("Internet", "*"):
        return "0.0.0.0/0"
    return prefix


def nsg_rules(rules, asg_id, ssh_port=22):
    """ARM security rules for ``rules`` (:class:`RuleSpec`) with "self" meaning the members of the application
    security group ``asg_id``, plus the explicit denies of all other inbound traffic from the internet and from the
    rest of the virtual network. Names and priorities are derived from the rules, so the same rules give the same
    body."""
    out = []
    counters = {}
    for rule in rules:
        base = PRIORITY_SELF if rule.source == "self" else PRIORITY_SSH
        if rule.direction == "egress":
            base = PRIORITY_EGRESS if rule.source != "self" else PRIORITY_SELF
        key = (rule.direction, base)
        counters[key] = counters.get(key, 0) + 1
        priority = base + counters[key] - 1
        ports = "*" if rule.protocol == "all" else (
            str(rule.port_from) if rule.port_from == rule.port_to else "%d-%d" % (rule.port_from, rule.port_to))
        props = {"protocol": _PROTO.get(rule.protocol, "*"), "access": "Allow",
                 "direction": "Inbound" if rule.direction == "ingress" else "Outbound", "priority": priority,
                 "sourcePortRange": "*", "destinationPortRange": ports}
        near, far = ("source", "destination") if rule.direction == "ingress" else ("destination", "source")
        if rule.source == "self":
            # between the cluster's own nodes: from its members to its members
            props[near + "ApplicationSecurityGroups"] = [{"id": asg_id}]
            props[far + "ApplicationSecurityGroups"] = [{"id": asg_id}]
        else:
            props[near + "AddressPrefix"] = _address(rule.source)
            props[far + "AddressPrefix"] = "*"
        if rule.description:
            props["description"] = rule.description
        name = "%s-%s-%d" % ("in" if rule.direction == "ingress" else "out", rule.protocol, priority)
        out.append({"name": name, "properties": props})
    out.append({"name": DENY_RULE, "properties": {
        "protocol": "*", "access": "Deny", "direction": "Inbound", "priority": PRIORITY_DENY,
        "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "Internet",
        "destinationAddressPrefix": "*", "description": "everything else from the internet"}})
    out.append({"name": VNET_DENY_RULE, "properties": {
        "protocol": "*", "access": "Deny", "direction": "Inbound", "priority": PRIORITY_VNET_DENY,
        "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "VirtualNetwork",
        "destinationAddressPrefix": "*",
        "description": "the rest of the virtual network (only the cluster's own nodes are allowed, above)"}})
    return out


def asg_ids(rules):
    """The application security groups the security rules ``rules`` name (lower-case ids)."""
    out = set()
    for rule in rules or []:
        p = rule.get("properties") or {}
        for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"):
            out.update((ref.get("id") or "").lower() for ref in p.get(key) or [])
    return out


def with_asg(rules, asg_id):
    """``rules`` (as sent) with every application security group they name replaced by ``asg_id``: an NSG's rules
    copied to another location name the cluster's group there."""
    out = []
    for rule in rules:
        props = dict(rule.get("properties") or {})
        for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"):
            if props.get(key):
                props[key] = [{"id": asg_id}]
        out.append(dict(rule, properties=props))
    return out


def rules_from_nsg(nsg):
    """The Allow rules of an NSG as :class:`RuleSpec` (the explicit deny is implied by the collection)."""
    out = []
    for rule in (nsg.get("properties") or {}).get("securityRules") or []:
        p = rule.get("properties") or {}
        if p.get("access") != "Allow":
            continue
        protocol = _PROTO_BACK.get((p.get("protocol") or "*").lower(), "all")
        ports = p.get("destinationPortRange") or "*"
        if protocol == "all" or ports == "*":
            low, high = -1, -1
        elif "-" in ports:
            low, high = [int(x) for x in ports.split("-", 1)]
        else:
            low = high = int(ports)
        inbound = p.get("direction") == "Inbound"
        near = "source" if inbound else "destination"
        if p.get(near + "ApplicationSecurityGroups"):
            source = "self"  # the cluster's members (the collection names no other group)
        else:
            source = _source_back(p.get(near + "AddressPrefix") or "*")
        out.append(RuleSpec("ingress" if inbound else "egress", protocol, low, high, source,
                            p.get("description") or ""))
    return out


# what ARM sets on a security rule (read-only in the SDK's SecurityRulePropertiesFormat ``_validation``)
RULE_READ_ONLY = ("provisioningState",)
# list members ARM answers with ``[]`` when the singular member is used (and the singular ones it leaves out when
# the list is used): empty lists and absent members are the same rule
RULE_LISTS = ("sourceAddressPrefixes", "destinationAddressPrefixes", "sourcePortRanges", "destinationPortRanges",
              "sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups")


def rule_request_properties(props):
    """A security rule's properties as a request would carry them: no read-only members, no empty lists."""
    return dict((k, v) for k, v in (props or {}).items()
                if k not in RULE_READ_ONLY and not (k in RULE_LISTS and not v) and v is not None)


def same_rules(nsg, wanted):
    """Whether the NSG's security rules are exactly ``wanted`` (rule dicts as sent), judging only the members a
    request sets: ARM's answers add ``id``, ``etag``, ``type``, ``provisioningState`` and empty lists
    (``sourceAddressPrefixes: []``, ...), which are no difference."""
    def norm(rules):
        out = []
        for rule in rules or []:
            props = rule_request_properties(rule.get("properties"))
            if props.get("description") == "":
                props.pop("description")
            for key in ("sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups"):
                if props.get(key):  # resource ids are case-insensitive; ARM may answer with another case
                    props[key] = sorted((ref.get("id") or "").lower() for ref in props[key])
            out.append((rule.get("name"), sorted((k, repr(v)) for k, v in props.items())))
        return sorted(out, key=repr)
    return norm((nsg.get("properties") or {}).get("securityRules")) == norm(wanted)
