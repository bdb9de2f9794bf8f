#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: The security rules of a GPU training cluster
version_added: 0.1.0
description:
  - Creates and reconciles the cluster's firewall, found again by the cluster id it carries. On C(aws) this is a
    security group named C(aiinfra-<cluster>). On C(gcp) it is the VPC firewall rules C(aiinfra-<cluster>-tcp22)
    (SSH, C(-v6) for IPv6 networks) and C(aiinfra-<cluster>-internal) (all protocols between nodes, by C(sourceTags)),
    targeting the nodes' network tag C(aiinfra-<cluster>); egress is Compute Engine's implied allow rule.
  - Secure by default. SSH is allowed only from O(admin_cidrs) (the whole internet only with
    O(allow_ssh_from_anywhere)). All traffic is allowed between members of the group itself (a self-reference,
    for NCCL, EFA and the rendezvous) and all outbound traffic.
  - Rules are reconciled idempotently. The firewall says what is open, and only that is open - a rule the collection
    made that is no longer asked for (a CIDR dropped from O(admin_cidrs)) is revoked on the next run. Rules somebody
    else added to the cluster's firewall are kept unless O(purge=true).
  - The union of O(admin_cidrs) is judged, not each entry - together wider than a /8 of IPv4 or a /32 of IPv6
    addresses (C(0.0.0.0/1) + C(128.0.0.0/1) as well as C(0.0.0.0/0)) needs O(allow_ssh_from_anywhere=true).
  - On C(gcp) the network's own rules apply to the nodes too. The module fails before changing anything when a rule
    of the network (not the cluster's) admits the nodes from addresses outside O(admin_cidrs) - the C(default)
    network's C(default-allow-ssh), C(default-allow-rdp), C(default-allow-icmp) and C(default-allow-internal) among
    them - naming the rules, unless O(allow_network_rules=true).
  - The local cloud has no firewall (its nodes sit on a private podman network); asking for one there fails.
author:
  - aiinfra platform team (@aiinfra)
extends_documentation_fragment:
  - aiinfra.gpu_cluster.cluster
  - aiinfra.gpu_cluster.cloud_shared
  - aiinfra.gpu_cluster.aws
  - aiinfra.gpu_cluster.aws.FIREWALL
  - aiinfra.gpu_cluster.azure
  - aiinfra.gpu_cluster.gcp
  - aiinfra.gpu_cluster.gcp.FIREWALL
attributes:
  check_mode:
    support: full
    description: Reports the rules that would be added or removed without touching anything.
  diff_mode:
    support: full
    description: Shows the rules before and after.
options:
  state:
    description: C(present) reconciles the rules; C(absent) deletes the firewall (after the nodes are gone).
    type: str
    choices: [present, absent]
    default: present
  admin_cidrs:
    description:
      - Networks allowed to reach the nodes over SSH, e.g. your office or VPN (C(203.0.113.0/24), C(2001:db8::/48)).
      - Required with O(state=present). C(0.0.0.0/0) and C(::/0) need O(allow_ssh_from_anywhere=true).
    type: list
    elements: str
  allow_ssh_from_anywhere:
    description:
      - Allow O(admin_cidrs) that together are wider than a /8 (IPv4) or a /32 (IPv6), such as C(0.0.0.0/0),
        C(::/0) or C(0.0.0.0/1) with C(128.0.0.0/1). Leave off unless the nodes are throwaway.
    type: bool
    default: false
  ssh_port:
    description: The nodes' SSH port.
    type: int
    default: 22
  purge:
    description:
      - Also remove rules of the cluster's firewall that the collection did not make (added by hand). The
        collection's own rules that are no longer asked for are removed whatever this says.
    type: bool
    default: false
  labels:
    description: Extra tags for the firewall (Compute Engine firewall rules take no labels; ignored on C(gcp)).
    type: dict
    default: {}
  owner:
    description:
      - Who makes the cluster, the C(aiinfra-owner) tag of the firewall (Compute Engine firewall rules take no labels;
        ignored on C(gcp)). Unset, the user and host the module runs as, C(user@host). See M(aiinfra.gpu_cluster.instance).
    type: str
seealso:
  - module: aiinfra.gpu_cluster.instance
"""

EXAMPLES = r"""
- name: SSH from the office only, everything inside the cluster
  aiinfra.gpu_cluster.firewall:
    cloud: aws
    region: us-east-1
    cluster: llm-train
    admin_cidrs:
      - 203.0.113.0/24

- name: The same on Compute Engine (rules on the network 'default' targeting the cluster's tag)
  aiinfra.gpu_cluster.firewall:
    cloud: gcp
    project: my-training-project
    cluster: llm-train
    admin_cidrs:
      - 203.0.113.0/24

- name: Drop the firewall (after the nodes)
  aiinfra.gpu_cluster.firewall:
    cloud: aws
    region: us-east-1
    cluster: llm-train
    state: absent
"""

RETURN = r"""
id:
  description: The firewall's id (the security group id on C(aws)); empty in check mode before it exists.
  returned: when state is present
  type: str
  sample: sg-0123456789abcdef0
name:
  description: The firewall's name.
  returned: when state is present
  type: str
  sample: aiinfra-llm-train
created:
  description: Whether this call created the firewall.
  returned: when state is present
  type: bool
rules:
  description: The rules after the call.
  returned: when state is present
  type: list
  elements: dict
  contains:
    direction:
      description: C(ingress) or C(egress).
      type: str
    protocol:
      description: C(tcp), C(udp), C(icmp) or C(all).
      type: str
    port_from:
      description: First port (-1 for all).
      type: int
    port_to:
      description: Last port (-1 for all).
      type: int
    source:
      description: A CIDR, C(self) (the cluster's members) or another group (C(sg:<id>)).
      type: str
    description:
      description: The rule's description.
      type: str
added:
  description: Rules this call added, as text.
  returned: when state is present
  type: list
  elements: str
  sample: ["ingress tcp:22 from 203.0.113.0/24"]
removed:
  description: Rules this call removed (the collection's own no longer asked for; others only with O(purge=true)), as text.
  returned: when state is present
  type: list
  elements: str
deleted:
  description: What O(state=absent) deleted.
  returned: when state is absent
  type: list
  elements: str
cluster:
  description: Where the cluster lives (cloud, region).
  returned: always
  type: dict
"""

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import (  # noqa: E402
    firewall_argument_spec, run_firewall)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import CloudModule  # noqa: E402


def main():
    module = CloudModule(argument_spec=firewall_argument_spec(), supports_check_mode=True)
    run_firewall(module)


if __name__ == "__main__":
    main()
