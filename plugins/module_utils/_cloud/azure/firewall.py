# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's firewall on Azure: a network security group per location the cluster uses.

The firewall module makes ``<cluster>-nsg-<location>`` in ``location``: SSH only from the admin networks, all
traffic between the members of the cluster's application security group ``<cluster>-asg-<location>`` (every node's
NIC), everything else from the internet and from the rest of the virtual network denied explicitly. When nodes fail
over to another location, the instance module copies its rules into an NSG there, naming the group there (an NSG
and a group must be in their NICs' region); a later firewall run keeps every copy in step.
"""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError

NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
ASG_TYPE = "Microsoft.Network/applicationSecurityGroups"


def _ours(rule):
    name = rule.get("name") or ""
    return name.startswith(("in-", "out-")) or name in (shapes.DENY_RULE, shapes.VNET_DENY_RULE)


def _wire(rules):
    """Rules read back from ARM as a request sends them: without what the service sets (read-only fields)."""
    return [{"name": r["name"], "properties": shapes.rule_request_properties(r.get("properties") or {})}
            for r in rules]


class AzureFirewall(object):
    """Mixed into the Azure provider (it brings ``clients``, ``_call``, ``_lros``, ``_list``)."""

    def _firewall_location(self):
        location = (self.opts.get("location") or "").lower()
        if not location:
            for entry in self.opts.get("placements") or []:
                if (entry or {}).get("location"):
                    return entry["location"].lower()
            raise ConfigError("location is required for the firewall on cloud azure",
                              hint="Set location (e.g. eastus) in the cloud options; the NSG lives there")
        return location

    def _primary_nsg(self, cluster, nsgs):
        try:
            want = shapes.nsg_name(cluster, self._firewall_location())
        except ConfigError:
            want = None
        for nsg in nsgs:
            if nsg.get("name") == want:
                return nsg
        return nsgs[0] if nsgs else None

    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None):
        network = self.clients()[2]
        location = self._firewall_location()
        name = shapes.nsg_name(cluster, location)
        tags = dict(labels or {})
        tags.update({CLUSTER_TAG: cluster, MANAGED_TAG: MANAGED_VALUE})
        nsgs = self._list(cluster, "Microsoft.Network/networkSecurityGroups")
        primary = [n for n in nsgs if n.get("name") == name]
        primary = primary[0] if primary else None
        desired = list(dict.fromkeys(rules))
        raw = ((primary or {}).get("properties") or {}).get("securityRules") or []
        existing = shapes.rules_from_nsg(primary) if primary else []
        foreign = [r for r in raw if not _ours(r)]
        foreign_specs = shapes.rules_from_nsg({"properties": {"securityRules": foreign}})
        add = [r for r in desired if r not in existing]
        # the collection's own rules (named in-/out-) that are no longer asked for always go; others only with purge
        remove = [r for r in shapes.rules_from_nsg({"properties": {"securityRules": [r for r in raw if _ours(r)]}})
                  if r not in desired]
        if purge:
            remove += [r for r in foreign_specs if r not in desired]
        targets = [primary or {"name": name, "location": location}] + [n for n in nsgs if n.get("name") != name]
        changed = False
        group = self.group_for(cluster)
        asgs = dict((a["name"], a) for a in self._list(cluster, ASG_TYPE))
        asg_calls, calls = [], []
        for nsg in targets:
            # "self" is the members of the cluster's application security group in the NSG's location
            asg = shapes.asg_name(cluster, nsg["location"])
            if asg not in asgs or (asgs[asg].get("tags") or {}) != tags:
                asg_calls.append((asg, network.application_security_groups.begin_create_or_update,
                                  (group, asg, shapes.asg_body(nsg["location"], tags))))
            wanted = shapes.nsg_rules(desired, self._rid(cluster, ASG_TYPE, asg))
            if not purge:
                wanted += _wire(foreign)
            if nsg.get("id") and shapes.same_rules(nsg, wanted) and (nsg.get("tags") or {}) == tags:
                continue
            body = {"location": nsg["location"], "tags": tags, "properties": {"securityRules": wanted}}
            calls.append((nsg["name"], network.network_security_groups.begin_create_or_update,
                          (group, nsg["name"], body)))
        # nodes made before the cluster had its group join it before the rules admit only its members
        nic_calls = self._asg_joins(cluster, group)
        changed = bool(calls or asg_calls or nic_calls)
        if changed and not check_mode:
            self._ensure_group_for_firewall(cluster, location, tags)
            if asg_calls:  # before the rules and the NICs that name them
                self._lros(asg_calls, "the cluster's application security group")
            if nic_calls:
                self._lros(nic_calls, "the nodes' network interfaces joining the cluster's group")
            if calls:
                self._lros(calls, "the cluster's network security group")
        after = [r for r in existing if r not in remove] + add
        return {
            "changed": changed,
            "created": primary is None,
            "id": primary["id"] if primary else ("" if check_mode else self._rid(cluster, NSG_TYPE, name)),
            "name": name,
            "before": [str(r) for r in existing],
            "rules": [r.to_dict() for r in after],
            "added": [str(r) for r in add],
            "removed": [str(r) for r in remove],
            "after": [str(r) for r in after],
        }

    def _ensure_group_for_firewall(self, cluster, location, tags):
        if not self._own_group(cluster):
            if self._group_exists(cluster) is None:
                raise ConfigError("resource group %s does not exist" % self.group_for(cluster),
                                  hint="Create it, or leave resource_group unset for one of the cluster's own")
            return
        group = self._group_exists(cluster)
        if group is None:
            resource = self.clients()[0]
            group_tags = {CLUSTER_TAG: cluster, MANAGED_TAG: MANAGED_VALUE}
            self._call(resource.resource_groups.create_or_update, self.group_for(cluster),
                       shapes.resource_group_body(location, group_tags))
        elif (group.get("tags") or {}).get(CLUSTER_TAG) != cluster:
            raise ConfigError("resource group %s exists but does not carry cluster %s's tag"
                              % (self.group_for(cluster), cluster),
                              hint="Name the group with resource_group (it is never deleted then), or remove it")

    def _nsg_in(self, cluster, location, primary, timeout=600):
        """The id of the cluster's NSG in ``location``, copying the firewall's rules there when it is missing."""
        if primary is None:
            raise ConfigError("cluster %s has no firewall" % cluster,
                              hint="Run aiinfra.gpu_cluster.firewall for the cluster first")
        if primary.get("location") == location:
            return primary["id"]
        network = self.clients()[2]
        name = shapes.nsg_name(cluster, location)
        nsgs = dict((n["name"], n) for n in self._list(cluster, NSG_TYPE))
        asg_id = self._asg_in(cluster, location, dict(primary.get("tags") or {}), timeout)
        wanted = shapes.with_asg(_wire((primary.get("properties") or {}).get("securityRules") or []), asg_id)
        current = nsgs.get(name)
        if current is None or not shapes.same_rules(current, wanted):
            body = {"location": location, "tags": dict(primary.get("tags") or {}),
                    "properties": {"securityRules": wanted}}
            self._lros([(name, network.network_security_groups.begin_create_or_update,
                         (self.group_for(cluster), name, body))], "the network security group in %s" % location,
                       timeout=timeout)
        return self._rid(cluster, NSG_TYPE, name)

    def _asg_joins(self, cluster, group):
        """PUTs that make each of the cluster's NICs that is not yet a member of the cluster's application security
        group in its location one (a NIC the collection made, rebuilt from what it has: subnet, public IP, NSG)."""
        network = self.clients()[2]
        calls = []
        for nic in self._list(cluster, "Microsoft.Network/networkInterfaces"):
            location = nic.get("location")
            asg_id = self._rid(cluster, ASG_TYPE, shapes.asg_name(cluster, location))
            props = nic.get("properties") or {}
            config = ((props.get("ipConfigurations") or [{}])[0].get("properties")) or {}
            if asg_id.lower() in shapes.asg_ids([{"properties": {"sourceApplicationSecurityGroups":
                                                                 config.get("applicationSecurityGroups")}}]):
                continue
            body = shapes.nic_body(location, nic.get("tags") or {}, (config.get("subnet") or {}).get("id"),
                                   (config.get("publicIPAddress") or {}).get("id"),
                                   (props.get("networkSecurityGroup") or {}).get("id"),
                                   bool(props.get("enableAcceleratedNetworking")), asg_id=asg_id)
            calls.append((nic["name"], network.network_interfaces.begin_create_or_update, (group, nic["name"], body)))
        return calls

    def _asg_in(self, cluster, location, tags, timeout=600):
        """The id of the cluster's application security group in ``location``, made when it is missing (by the
        firewall for its own location; by a node's network when the cluster fails over to another)."""
        network = self.clients()[2]
        name = shapes.asg_name(cluster, location)
        if not [a for a in self._list(cluster, ASG_TYPE) if a.get("name") == name]:
            self._lros([(name, network.application_security_groups.begin_create_or_update,
                         (self.group_for(cluster), name, shapes.asg_body(location, tags)))],
                       "the application security group in %s" % location, timeout=timeout)
        return self._rid(cluster, ASG_TYPE, name)

    def delete_firewall(self, cluster, check_mode=False):
        network = self.clients()[2]
        nsgs = self._list(cluster, NSG_TYPE)
        if not nsgs:
            return {"changed": False, "deleted": []}
        primary = self._primary_nsg(cluster, nsgs)
        before = [str(r) for r in shapes.rules_from_nsg(primary)]
        if not check_mode:
            try:
                self._lros([(n["name"], network.network_security_groups.begin_delete,
                             (self.group_for(cluster), n["name"])) for n in nsgs], "the firewall to delete")
            except CloudError as exc:
                if exc.code == "InUseNetworkSecurityGroupCannotBeDeleted":
                    raise ConfigError("the firewall of cluster %s is still in use" % cluster, code=exc.code,
                                      hint="Remove the cluster's nodes first (aiinfra.gpu_cluster.instance "
                                           "state=absent)")
                raise
        asgs = self._list(cluster, ASG_TYPE)
        if asgs and not check_mode:  # after the rules that name them
            self._lros([(a["name"], network.application_security_groups.begin_delete,
                         (self.group_for(cluster), a["name"])) for a in asgs], "the firewall's groups to delete")
        return {"changed": True, "deleted": ["networkSecurityGroups/%s" % n["name"] for n in nsgs]
                + ["applicationSecurityGroups/%s" % a["name"] for a in asgs],
                "before": before, "id": primary["id"], "name": primary["name"]}
