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

import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError, NotFoundError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.shapes import (
    MARKER, firewall_bodies, firewall_name_re, is_implied, network_tag, rules_from_firewall)


class GcpFirewall(object):
    """``ensure_firewall`` / ``delete_firewall`` of :class:`GcpProvider` (uses its ``api``, ``opts``, ``clock``)."""

    clock = staticmethod(time.monotonic)

    def _firewalls(self, cluster):
        pattern = firewall_name_re(cluster)
        found = self.api.items(self.api.path("global", "firewalls"),
                               params={"filter": "name eq aiinfra-%s-.*" % cluster})
        return [fw for fw in found if pattern.match(fw.get("name", ""))
                and (fw.get("description") or "").startswith(MARKER % cluster + ":")]

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

    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None, timeout=600):
        deadline = self.clock() + timeout
        current = dict((fw["name"], fw) for fw in self._firewalls(cluster))
        existing = [r for fw in current.values() for r in rules_from_firewall(fw, cluster)]
        desired = list(dict.fromkeys(rules))
        implied = [r for r in desired if is_implied(r)]
        bodies = firewall_bodies(cluster, desired, "")
        # the network is looked up (and must exist) only when a rule is to be made
        network = self._network() if set(bodies) - set(current) else None
        for body in bodies.values():
            body["network"] = network
        add = [r for r in desired if r not in existing and r not in implied]
        remove = [r for r in existing if r not in desired] if purge else []
        ops = []
        for name, body in sorted(bodies.items()):
            have = current.get(name)
            if have is None:
                if not check_mode:
                    ops.append(self._fw_call("POST", name, body))
                continue
            ranges = list(body.get("sourceRanges") or [])
            if not purge:
                ranges += [r for r in have.get("sourceRanges") or [] if r not in ranges]
            patch = {}
            if body.get("sourceRanges") is not None and sorted(ranges) != sorted(have.get("sourceRanges") or []):
                patch["sourceRanges"] = ranges
            if body.get("sourceTags") and sorted(body["sourceTags"]) != sorted(have.get("sourceTags") or []):
                patch["sourceTags"] = body["sourceTags"]
            if body["allowed"] != have.get("allowed") or body["targetTags"] != have.get("targetTags"):
                patch.update(allowed=body["allowed"], targetTags=body["targetTags"])
            if patch and not check_mode:
                ops.append(self._fw_call("PATCH", name, patch))
        if purge and not check_mode:
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

    def delete_firewall(self, cluster, check_mode=False, timeout=600):
        deadline = self.clock() + timeout
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
