#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: A whole GPU training cluster as one resource
version_added: 0.1.0
description:
  - Creates, scales and deletes the nodes of a training cluster on one cloud.
  - Each node has a stable O(count)-independent C(rank) (0..N-1). Raising O(count) adds nodes with the next
    ranks, lowering it removes the highest ranks; existing ranks never move.
  - Every resource carries the cluster id, so re-running with the same arguments changes nothing and
    O(state=absent) finds everything to remove.
  - A call that fails removes the nodes it created, so a failure leaves the cluster as it found it.
author:
  - aiinfra platform team
extends_documentation_fragment:
  - aiinfra.gpu_cluster.cluster
  - aiinfra.gpu_cluster.cluster.LOCAL
attributes:
  check_mode:
    support: full
    description: Reports the plan (ranks to keep, create, delete, start) without touching anything.
  diff_mode:
    support: full
    description: Shows the cluster's nodes before and after.
options:
  state:
    description:
      - C(present) reconciles the cluster to O(count) running nodes; C(absent) removes every node and every
        other resource carrying the cluster id.
    type: str
    choices: [present, absent]
    default: present
  count:
    description: Number of nodes. C(0) keeps the cluster's network but no nodes.
    type: int
    default: 2
  instance_type:
    description:
      - The node's machine type where the cloud has them. On C(local) it is only recorded as a label.
    type: str
  image:
    description:
      - The node image. On C(local) a podman image that boots systemd and runs sshd; when unset, a Debian 12
        image is built once with debootstrap (no registry needed) and cached.
    type: str
  ssh_public_key:
    description:
      - The text of an OpenSSH public key installed for O(ssh_user) on every node,
        e.g. C("{{ lookup('file', '~/.ssh/id_ed25519.pub') }}").
      - Required when nodes are to be created.
    type: str
  ssh_user:
    description: The login user created on each node, with passwordless sudo.
    type: str
    default: gpuadmin
  labels:
    description: Extra labels/tags for every resource of the cluster.
    type: dict
    default: {}
  wait:
    description: Wait until every node runs and answers on its SSH port.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait. Running past it fails the task (and removes the nodes this call created).
    type: int
    default: 600
  privileged:
    description:
      - Run local nodes privileged (needed for Docker inside a node). Only for O(cloud=local).
    type: bool
    default: false
  cpus:
    description: CPU limit per local node (podman C(--cpus)). Only for O(cloud=local).
    type: str
  memory:
    description: Memory limit per local node (podman C(--memory), e.g. C(4g)). Only for O(cloud=local).
    type: str
  ssh_access:
    description:
      - How the controller reaches local nodes over SSH. C(address) uses each node's address on the
        cluster network (rootful podman); C(published) publishes port 22 on C(127.0.0.1) (rootless podman).
      - C(auto) picks C(address) as root, C(published) otherwise. Only for O(cloud=local).
    type: str
    choices: [auto, address, published]
    default: auto
  debian_mirror:
    description: Debian mirror used to build the local node image. Only for O(cloud=local).
    type: str
notes:
  - The local cloud needs podman (and runc and debootstrap to build its image) on the controller;
    C(make setup) installs them.
seealso:
  - module: aiinfra.gpu_cluster.instance_info
"""

EXAMPLES = r"""
- name: Two local nodes, reachable over SSH
  aiinfra.gpu_cluster.instance:
    cloud: local
    cluster: demo
    count: 2
    ssh_public_key: "{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"
  register: cluster

- name: Show where rank 0 is
  ansible.builtin.debug:
    msg: "{{ cluster.nodes[0].ssh_host }}"

- name: Remove everything of the cluster
  aiinfra.gpu_cluster.instance:
    cluster: demo
    state: absent
"""

RETURN = r"""
nodes:
  description: The cluster's nodes, ordered by rank.
  returned: always
  type: list
  elements: dict
  contains:
    rank: {description: Stable rank 0..N-1., type: int, sample: 0}
    name: {description: Node name., type: str, sample: demo-0}
    id: {description: The cloud's id of the node., type: str}
    state: {description: running, stopped, pending, ..., type: str}
    private_address: {description: Address inside the cluster network., type: str, sample: 10.89.0.2}
    public_address: {description: Public address, if any., type: str}
    ssh_host: {description: Host the controller connects to., type: str}
    ssh_port: {description: SSH port., type: int, sample: 22}
    ssh_user: {description: SSH login user., type: str, sample: gpuadmin}
    instance_type: {description: Machine type., type: str}
    zone: {description: Zone / placement the node landed in., type: str}
    labels: {description: User labels on the node., type: dict}
plan:
  description: What the call did (or, in check mode, would do), by rank.
  returned: always
  type: dict
  sample: {keep: [0, 1], create: [2], delete: [], start: []}
cluster:
  description: Where the cluster lives (cloud, region, image, ...).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import (  # noqa: E402
    instance_argument_spec, run_instance)


def main():
    module = AnsibleModule(argument_spec=instance_argument_spec(), supports_check_mode=True)
    run_instance(module)


if __name__ == "__main__":
    main()
