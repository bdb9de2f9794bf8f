# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``gcp`` cloud's firewall: VPC firewall rules targeting the cluster's network tag.

SSH from each admin network family is one rule (``aiinfra-<cluster>-tcp22``, ``...-tcp22-v6``: a rule holds IPv4
or IPv6 ranges, not both); traffic between the nodes is ``aiinfra-<cluster>-internal`` with ``sourceTags`` (a rule
with neither sourceRanges nor sourceTags would be given 0.0.0.0/0). Egress needs no rule: every VPC network has
an implied allow-all egress rule. Firewall rules carry no labels: they are found by name and by the cluster
marker in their description.
"""

from __future__ import annotations

import ipaddress
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError, NotFoundError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.shapes import (
    MARKER, OPERATION_TIMEOUT, firewall_bodies, firewall_name_re, is_implied, last, network_tag, rules_from_firewall)


def _covered(ranges, admin):
    """Whether every CIDR of ``ranges`` lies inside one of the ``admin`` networks."""
    nets = [ipaddress.ip_network(a) for a in admin]
    for text in ranges:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return False
        if not any(net.version == a.version and net.subnet_of(a) for a in nets):
            return False
    return True


def _ports(fw):
    out = []
    for allowed in fw.get("allowed") or []:
        proto = allowed.get("IPProtocol", "all")
        ports = allowed.get("ports") or []
        out.extend("%s:%s" % (proto, p) for p in ports) if ports else out.append(proto)
    return ",".join(out) or "nothing"


def wider_rules(firewalls, network, cluster, admin):
    """The rules of ``network`` not made for the cluster that admit its nodes from addresses outside ``admin``:
    enabled INGRESS allow rules targeting every instance or the cluster's tag, with a sourceRange the admin networks
    do not cover (``default-allow-ssh``, ``default-allow-internal`` of the ``default`` network, ...)."""
    tag = network_tag(cluster)
    found = []
    for fw in firewalls:
        if last(fw.get("network")) != network or fw.get("disabled"):
            continue
        if (fw.get("direction") or "INGRESS") != "INGRESS" or not fw.get("allowed"):
            continue
        if (fw.get("description") or "").startswith(MARKER % cluster + ":"):
            continue
        targets = fw.get("targetTags") or []
        if fw.get("targetServiceAccounts") or (targets and tag not in targets):
            continue
        ranges = fw.get("sourceRanges") or []
        if ranges and not _covered(ranges, admin):
            found.append("%s (%s -> %s)" % (fw.get("name"), ", ".join(ranges), _ports(fw)))
    return found


class GcpFirewall(object):
    """``ensure_firewall`` / ``delete_firewall`` of :class:`GcpProvider` (uses its ``api``, ``opts``, ``clock``)."""

    clock = staticmethod(time.monotonic)

    def _firewalls(self, cluster, found=None):
        pattern = firewall_name_re(cluster)
        if found is None:
            found = self.api.items(self.api.path("global", "firewalls"),
                                   params={"filter": "name eq aiinfra-%s-.*" % cluster})
        return [fw for fw in found if pattern.match(fw.get("name", ""))
                and (fw.get("description") or "").startswith(MARKER % cluster + ":")]

    def _check_network_rules(self, cluster, everything, desired):
        """Fail, before anything changes, when the network's own rules admit the nodes from wider than
        admin_cidrs (unless allow_network_rules)."""
        if self.opts.get("allow_network_rules"):
            return
        network = last(self.opts.get("network") or "default")
        admin = [r.source for r in desired if r.direction == "ingress" and r.source not in ("self",)
                 and "/" in r.source]
        wider = wider_rules(everything, network, cluster, admin)
        if wider:
            raise ConfigError(
                "network %s has firewall rules that admit the cluster's nodes from wider than admin_cidrs: %s"
                % (network, "; ".join(wider)),
                hint="Delete or narrow them (gcloud compute firewall-rules delete NAME), give the cluster a network "
                     "of its own (network), or set allow_network_rules: true to accept them")

    def _fw_call(self, method, name, body=None):
        """One change of a rule. No requestId: names make these idempotent (a repeated insert is 409, a repeated
        delete 404, a patch sets the same values), and a requestId would outlive a rule deleted and made again."""
        path = self.api.path("global", "firewalls") + ("" if method == "POST" else "/" + name)
        try:
            return self.api.call(method, path, body=body,
                                 context={"what": "%s of firewall rule %s" % (method.lower(), name),
                                          "resource": "firewall rule %s" % name})
        except ConfigError as exc:
            if method == "POST" and exc.code == "alreadyExists":
                return None
            raise
        except NotFoundError:
            if method == "DELETE":
                return None
            raise

    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None):
        deadline = self.clock() + OPERATION_TIMEOUT
        # one read of the project's rules: the cluster's own, and the network's that apply to the nodes
        everything = self.api.items(self.api.path("global", "firewalls"))
        current = dict((fw["name"], fw) for fw in self._firewalls(cluster, everything))
        existing = [r for fw in current.values() for r in rules_from_firewall(fw, cluster)]
        desired = list(dict.fromkeys(rules))
        self._check_network_rules(cluster, everything, desired)
        implied = [r for r in desired if is_implied(r)]
        bodies = firewall_bodies(cluster, desired, "")
        # the network is looked up (and must exist) only when a rule is to be made
        network = self._network() if set(bodies) - set(current) else None
        for body in bodies.values():
            body["network"] = network
        add = [r for r in desired if r not in existing and r not in implied]
        # every rule of the cluster's own firewall rules is the collection's: what is no longer asked for goes
        remove = [r for r in existing if r not in desired]
        ops = []
        for name, body in sorted(bodies.items()):
            have = current.get(name)
            if have is None:
                if not check_mode:
                    ops.append(self._fw_call("POST", name, body))
                continue
            ranges = list(body.get("sourceRanges") or [])
            patch = {}
            if body.get("sourceRanges") is not None and sorted(ranges) != sorted(have.get("sourceRanges") or []):
                patch["sourceRanges"] = ranges
            if body.get("sourceTags") and sorted(body["sourceTags"]) != sorted(have.get("sourceTags") or []):
                patch["sourceTags"] = body["sourceTags"]
            if body["allowed"] != have.get("allowed") or body["targetTags"] != have.get("targetTags"):
                patch.update(allowed=body["allowed"], targetTags=body["targetTags"])
            if patch and not check_mode:
                ops.append(self._fw_call("PATCH", name, patch))
        if not check_mode:
            for name in sorted(set(current) - set(bodies)):
                ops.append(self._fw_call("DELETE", name))
        self.api.wait_all(ops, deadline, {"what": "firewall rules of %s" % cluster})
        after = [r for r in existing if r not in remove] + add
        return {
            "changed": bool(add or remove),
            "created": not current and bool(bodies),
            "id": network_tag(cluster),
            "name": network_tag(cluster),
            "network": (network or "").rsplit("/", 1)[-1] or None,
            "before": [str(r) for r in existing],
            "rules": [r.to_dict() for r in after + implied],
            "added": [str(r) for r in add],
            "removed": [str(r) for r in remove],
            "after": [str(r) for r in after],
        }

    def delete_firewall(self, cluster, check_mode=False):
        return self._delete_firewall(cluster, check_mode, self.clock() + OPERATION_TIMEOUT)

    def _delete_firewall(self, cluster, check_mode, deadline):
        """:meth:`delete_firewall` by ``deadline`` (a teardown's, when it deletes the cluster's resources)."""
        current = self._firewalls(cluster)
        before = [str(r) for fw in current for r in rules_from_firewall(fw, cluster)]
        ops = []
        if not check_mode:
            for fw in current:
                ops.append(self._fw_call("DELETE", fw["name"]))
            try:
                self.api.wait_all(ops, deadline, {"what": "deletion of the firewall rules of %s" % cluster})
            except NotFoundError:
                pass
        return {"changed": bool(current), "deleted": ["firewall/%s" % fw["name"] for fw in current], "before": before,
                "id": network_tag(cluster), "name": network_tag(cluster)}
