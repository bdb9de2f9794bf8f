# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``aws`` cloud's firewall: one security group per cluster, found by the cluster's tags."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.shapes import (
    group_name, permissions_from_rules, rules_from_group, tag_list)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import CLUSTER_TAG, MANAGED_TAG, MANAGED_VALUE, RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError, NotFoundError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.rules import made_by_us


class SecurityGroupFirewall(object):
    """``ensure_firewall`` / ``delete_firewall`` of :class:`AwsProvider` (uses its ``_call`` and ``_pages``)."""

    def _cluster_group(self, cluster):
        groups = self._pages("describe_security_groups", "SecurityGroups", Filters=self._owned_filters(cluster))
        if len(groups) > 1:
            raise ConfigError("cluster %s has %d security groups: %s" % (cluster, len(groups),
                                                                         ", ".join(g["GroupId"] for g in groups)),
                              hint="Delete the extra ones; the collection manages one per cluster")
        return groups[0] if groups else None

    def _default_vpc(self):
        vpcs = self._call("describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}]).get("Vpcs") or []
        if not vpcs:
            raise ConfigError("the region %s has no default VPC" % self.region, hint="Set vpc_id")
        return vpcs[0]["VpcId"]

    def _create_group(self, cluster, name, vpc_id, tags):
        try:
            return self._call("create_security_group", GroupName=name, VpcId=vpc_id,
                              Description="aiinfra.gpu_cluster %s: SSH from admin CIDRs, all traffic inside" % cluster,
                              TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}])["GroupId"]
        except ConfigError as exc:
            if exc.code != "InvalidGroup.Duplicate":
                raise
        # the group exists: ours from an attempt whose answer was lost, or somebody else's
        group = self._cluster_group(cluster)
        if group is None:
            raise ConfigError("a security group named %s exists but does not carry cluster %s's tags" % (name, cluster),
                              hint="Delete or rename it, or tag it %s=%s and %s=%s"
                                   % (CLUSTER_TAG, cluster, MANAGED_TAG, MANAGED_VALUE))
        return group["GroupId"]

    def ensure_firewall(self, cluster, rules, purge=False, check_mode=False, labels=None):
        name = group_name(cluster)
        group = self._cluster_group(cluster)
        desired = list(dict.fromkeys(rules))
        if group is None:
            # EC2 gives every new group an allow-all IPv4 egress rule
            existing = [RuleSpec("egress", "all", -1, -1, "0.0.0.0/0")]
            gid = None
            if not check_mode:
                vpc_id = self.opts.get("vpc_id") or self._default_vpc()
                tags = dict(labels or {})
                tags.update({CLUSTER_TAG: cluster, MANAGED_TAG: MANAGED_VALUE, "Name": name})
                gid = self._create_group(cluster, name, vpc_id, tags)
        else:
            gid = group["GroupId"]
            if self.opts.get("vpc_id") and group.get("VpcId") != self.opts["vpc_id"]:
                raise ConfigError("the cluster's security group %s is in %s, not %s"
                                  % (gid, group.get("VpcId"), self.opts["vpc_id"]),
                                  hint="Tear the cluster down to move it to another VPC")
            existing = rules_from_group(group)
        add = [r for r in desired if r not in existing]
        # the collection's own rules that are no longer asked for always go; anybody else's only with purge
        remove = [r for r in existing if r not in desired and (purge or made_by_us(r))]
        if not check_mode:
            for direction in ("ingress", "egress"):
                these = [r for r in add if r.direction == direction]
                if these:
                    try:
                        self._call("authorize_security_group_%s" % direction, GroupId=gid,
                                   IpPermissions=permissions_from_rules(these, gid))
                    except ConfigError as exc:
                        # an earlier attempt went through but its answer was lost
                        if exc.code != "InvalidPermission.Duplicate":
                            raise
            for direction in ("ingress", "egress"):
                these = [r for r in remove if r.direction == direction]
                if these:
                    try:
                        self._call("revoke_security_group_%s" % direction, GroupId=gid,
                                   IpPermissions=permissions_from_rules(these, gid, descriptions=False))
                    except NotFoundError as exc:
                        if exc.code != "InvalidPermission.NotFound":
                            raise
        after = [r for r in existing if r not in remove] + add
        return {
            "changed": group is None or bool(add or remove),
            "created": group is None,
            "id": gid,
            "name": name,
            "before": [str(r) for r in existing] if group is not None else [],
            "rules": [r.to_dict() for r in after],
            "added": [str(r) for r in add],
            "removed": [str(r) for r in remove],
            "after": [str(r) for r in after],
        }

    def delete_firewall(self, cluster, check_mode=False):
        group = self._cluster_group(cluster)
        if group is None:
            return {"changed": False, "deleted": []}
        before = [str(r) for r in rules_from_group(group)]
        if not check_mode:
            try:
                self._call("delete_security_group", GroupId=group["GroupId"])
            except ConfigError as exc:
                if exc.code == "DependencyViolation":
                    raise ConfigError("security group %s of cluster %s is still in use" % (group["GroupId"], cluster),
                                      hint="Remove the cluster's nodes first (aiinfra.gpu_cluster.instance state=absent)",
                                      code=exc.code)
                raise
        return {"changed": True, "deleted": ["security-group/%s (%s)" % (group["GroupName"], group["GroupId"])],
                "before": before, "id": group["GroupId"], "name": group["GroupName"]}
