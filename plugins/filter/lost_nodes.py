# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lost_nodes
short_description: Name the lost nodes of a cluster
version_added: 0.1.0
description:
  - Takes the hostvars of the play's nodes and the cluster's nodes as the cloud lists them, and returns the nodes that
    are lost, in rank order, each with the reason.
  - A node is lost when the cloud no longer has it (gone, or another node id under its rank), when the cloud says it
    is not running (stopped, terminated), or when it did not answer a short ping (its C(_gpu_cluster_ping) result is
    unreachable or failed).
  - The role aiinfra.gpu_cluster.gpu_cluster uses it (C(tasks_from=lost_nodes.yml)) for C(train.yml)'s recoveries and
    C(recover.yml).
author:
  - aiinfra platform team (@aiinfra)
options:
  _input:
    description: Hostvars of the nodes (C(inventory_hostname), C(gpu_cluster_rank), C(gpu_cluster_node_id), C(_gpu_cluster_ping)).
    type: list
    elements: dict
    required: true
  cloud_nodes:
    description: The cluster's nodes (the C(nodes) of M(aiinfra.gpu_cluster.instance_info)); C(none) when no cloud can be asked.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Name the lost nodes
  ansible.builtin.set_fact:
    lost: "{{ ansible_play_hosts_all | map('extract', hostvars) | aiinfra.gpu_cluster.lost_nodes(info.nodes) }}"
"""

RETURN = r"""
_value:
  description: One dict per lost node, in rank order.
  type: list
  elements: dict
  contains:
    host:
      description: The inventory hostname.
      type: str
    rank:
      description: C(gpu_cluster_rank).
      type: int
    node_id:
      description: C(gpu_cluster_node_id), the node's id when it was added.
      type: str
    reason:
      description: Why it counts as lost, e.g. C(stopped in the cloud) or C(does not answer over SSH - ...).
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.recovery import lost_nodes as _lost_nodes


def lost_nodes(hosts, cloud_nodes=None):
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("lost_nodes expects the nodes' hostvars as a list, got %s" % type(hosts).__name__)
    keys = ("inventory_hostname", "gpu_cluster_rank", "gpu_cluster_node_id", "_gpu_cluster_ping")
    # only these: templating every variable of a node's hostvars would be slow and may fail on unrelated ones
    return _lost_nodes([dict((k, h.get(k)) for k in keys) for h in hosts], cloud_nodes)


class FilterModule(object):
    def filters(self):
        return {"lost_nodes": lost_nodes}
