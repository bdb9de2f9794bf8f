# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``firewall`` module's behaviour: the rules a cluster needs, validated, reconciled through a provider."""

from __future__ import annotations

import ipaddress

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import OWNER_TAG, RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import (
    cluster_argument_spec, fail, owner_of, provider_for)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.providers import (
    argument_spec, firewall_clouds)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.rules import (
    OUT_RULE, SELF_IN_RULE, SELF_OUT_RULE, SSH_RULE)

WORLD = ("0.0.0.0/0", "::/0")
# the widest union of admin_cidrs that needs no opt-in: a /8 of IPv4 addresses, a /32 of IPv6 addresses
WIDEST = {4: 8, 6: 32}


def firewall_argument_spec():
    clouds = firewall_clouds()
    spec = cluster_argument_spec(clouds)
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        admin_cidrs=dict(type="list", elements="str"),
        allow_ssh_from_anywhere=dict(type="bool", default=False),
        ssh_port=dict(type="int", default=22),
        purge=dict(type="bool", default=False),
        labels=dict(type="dict", default={}),
        owner=dict(type="str"),
    )
    # each cloud's own (declared next to its provider)
    spec.update(argument_spec("firewall", clouds=clouds))
    return spec


def normalise_cidrs(cidrs, allow_world=False):
    """Validate ``admin_cidrs``: each a network address (v4 or v6); the whole internet only with the opt-in."""
    if not cidrs:
        raise ConfigError("admin_cidrs is required: SSH is only opened to the networks listed there",
                          hint="e.g. admin_cidrs: ['203.0.113.0/24'] (your office or VPN); 0.0.0.0/0 needs "
                               "allow_ssh_from_anywhere: true")
    out = []
    for text in cidrs:
        text = (text or "").strip()
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ConfigError("admin_cidrs entry %r is not a CIDR (%s)" % (text, exc),
                                  hint="Write networks like 203.0.113.0/24 or 2001:db8::/48; a single host is /32 or /128")
            raise ConfigError("admin_cidrs entry %r has host bits set" % text, hint="Did you mean %s?" % loose)
        if "/" not in text:
            raise ConfigError("admin_cidrs entry %r has no prefix length" % text,
                              hint="Write %s for a single host" % net)
        if str(net) not in out:
            out.append(str(net))
    if not allow_world:
        check_union(out)
    return out


def check_union(cidrs):
    """Refuse admin networks that together are wider than a /8 (IPv4) or a /32 (IPv6): ``0.0.0.0/1`` +
    ``128.0.0.0/1`` is the whole internet as surely as ``0.0.0.0/0``."""
    for version, widest in sorted(WIDEST.items()):
        nets = list(ipaddress.collapse_addresses(
            n for n in (ipaddress.ip_network(c) for c in cidrs) if n.version == version))
        total = sum(n.num_addresses for n in nets)
        if total <= 2 ** ((32 if version == 4 else 128) - widest):
            continue
        union = ", ".join(str(n) for n in nets)
        if any(n.prefixlen == 0 for n in nets):
            what = "the whole internet (%s)" % union
        else:
            what = "more than a /%d of IPv%d addresses (together %s)" % (widest, version, union)
        raise ConfigError("admin_cidrs opens SSH to %s" % what,
                          hint="List your admin networks instead (together at most a /8 of IPv4 and a /32 of "
                               "IPv6), or set allow_ssh_from_anywhere: true if you really mean it")


def desired_rules(admin_cidrs, ssh_port=22):
    """SSH from each admin network, everything between the cluster's members, everything out.

    EFA needs the self-reference in both directions (its traffic is not IP, so 0.0.0.0/0 does not cover it).
    """
    rules = [RuleSpec("ingress", "tcp", ssh_port, ssh_port, cidr, SSH_RULE) for cidr in admin_cidrs]
    rules.append(RuleSpec("ingress", "all", -1, -1, "self", SELF_IN_RULE))
    rules.append(RuleSpec("egress", "all", -1, -1, "self", SELF_OUT_RULE))
    rules.append(RuleSpec("egress", "all", -1, -1, "0.0.0.0/0", OUT_RULE))
    return rules


def run_firewall(module):
    params = module.params
    try:
        provider = provider_for(module)
        if params["state"] == "absent":
            result = provider.delete_firewall(params["cluster"], check_mode=module.check_mode)
            diff = {"before": {"rules": result.pop("before", [])}, "after": {"rules": []}}
        else:
            if not 1 <= params["ssh_port"] <= 65535:
                raise ConfigError("ssh_port must be 1..65535, got %d" % params["ssh_port"])
            cidrs = normalise_cidrs(params["admin_cidrs"], params["allow_ssh_from_anywhere"])
            labels = dict((str(k), str(v)) for k, v in (params["labels"] or {}).items())
            for key in labels:
                if key.startswith("aiinfra-"):
                    raise ConfigError("label %r is not allowed" % key, hint="Keys starting with 'aiinfra-' are reserved")
            labels[OWNER_TAG] = owner_of(params)
            result = provider.ensure_firewall(params["cluster"], desired_rules(cidrs, params["ssh_port"]),
                                              purge=params["purge"], check_mode=module.check_mode, labels=labels)
            diff = {"before": {"rules": sorted(result.pop("before"))}, "after": {"rules": sorted(result.pop("after"))}}
        result["cluster"] = dict(provider.describe(), id=params["cluster"])
    except CloudError as exc:
        fail(module, exc)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)
