#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

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
  - aiinfra platform team (@aiinfra)
extends_documentation_fragment:
  - aiinfra.gpu_cluster.cluster
  - aiinfra.gpu_cluster.cloud_shared
  - aiinfra.gpu_cluster.cloud_shared.INSTANCE
  - aiinfra.gpu_cluster.local
  - aiinfra.gpu_cluster.local.INSTANCE
  - aiinfra.gpu_cluster.aws
  - aiinfra.gpu_cluster.aws.INSTANCE
  - aiinfra.gpu_cluster.azure
  - aiinfra.gpu_cluster.azure.INSTANCE
  - aiinfra.gpu_cluster.gcp
  - aiinfra.gpu_cluster.gcp.INSTANCE
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
  replace:
    description:
      - Ranks whose node is deleted and created again under the same rank and name - a node that was lost,
        preempted or broken. The other ranks keep their nodes as they are (not started, not touched), and the new
        node joins the cluster as O(count) would make it (same network, security group or firewall tag, placement).
      - An action, not a state - every call that names a rank replaces its node (C(changed)); a rank with no node is
        simply created. Each rank must be below O(count). C(--check) shows the plan (C(plan.replace)).
      - The playbooks C(train.yml) (with C(torchrun_max_recoveries)) and C(recover.yml) use it for lost nodes.
    type: list
    elements: int
    default: []
  on_demand:
    description:
      - Ranks whose node, when this call creates it (a rank of O(replace), or one with no node), is launched
        on-demand even with O(spot=true) - the spot fallback (C(gpu_cluster_spot_fallback_after)), in a launch of
        its own beside the spot one. The nodes kept are not touched. Without O(spot) it changes nothing.
      - C(train.yml)'s recovery names the ranks that lost C(gpu_cluster_spot_fallback_after) nodes to preemption.
    type: list
    elements: int
    default: []
  instance_type:
    description:
      - The node's machine type where the cloud has them. On C(local) it is only recorded as a label.
      - On C(aws) an EC2 instance type (e.g. C(p4d.24xlarge)); required. Preflight checks that it exists in
        the region before anything is created.
      - On C(gcp) a machine type (e.g. C(a3-highgpu-8g), C(a2-highgpu-1g), C(g2-standard-4), or C(n1-standard-8)
        with O(accelerators)); required. Preflight checks it (and the GPUs) in each placement's zone.
    type: str
  image:
    description:
      - The node image. On C(local) a podman image that boots systemd and runs sshd; when unset, a Debian 12
        image is built once with debootstrap (no registry needed) and cached.
      - On C(aws) an AMI id, or a name pattern (C(*) wildcards) whose newest match is used; required.
      - On C(gcp) C(projects/PROJECT/global/images/family/FAMILY) (the family's newest image) or
        C(projects/PROJECT/global/images/NAME) (or its self link); required.
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
  owner:
    description:
      - Who makes the cluster, written as the C(aiinfra-owner) tag on every node (on C(gcp) as a label value -
        lowercase, other characters than C([a-z0-9_-]) become C(_)). 1-128 printable characters.
      - Unset, the user and host the module runs as, C(user@host). The playbooks pass C(gpu_cluster_owner) (by
        default AWX's launching user, else unset).
      - The nodes of a cluster made by another owner are never deleted (O(state=absent), a lower O(count), or
        O(replace)) without O(force). Nodes without the tag (made before owners were recorded) belong to nobody.
    type: str
  ttl:
    description:
      - Hours each new node lives (the C(aiinfra-ttl-minutes) tag, whole minutes); C(0) - no limit. The node's
        deadline (its launch time + the TTL) is in the result's C(nodes[].deadline) and M(aiinfra.gpu_cluster.instance_info)'s.
      - gcp - C(scheduling.maxRunDuration) with C(instanceTerminationAction=DELETE) - Compute Engine deletes the VM at the
        deadline whatever happens on it. aws, azure, local - the node stops itself at the deadline (the C(gpu_cluster)
        role's lifetime timer, which C(provision.yml) installs with C(gpu_cluster_ttl)); on aws that terminates it
        (O(self_stop) is implied).
      - Nodes that exist keep the TTL they were made with.
    type: float
    default: 0
  self_stop:
    description:
      - The nodes may stop themselves (the lifetime timer of C(gpu_cluster_ttl) / C(gpu_cluster_idle_minutes)), and a
        node that stops itself should cost nothing more. aws - C(InstanceInitiatedShutdownBehavior=terminate) (a
        shutdown from inside the instance terminates it). gcp - a VM shut down from inside is C(TERMINATED) (stopped,
        no more compute billed, its boot disk until teardown). azure - each VM gets a system-assigned managed
        identity and a role on itself (O(self_stop_role), default Virtual Machine Contributor), made with the VM and
        removed at teardown, and the lifetime timer deallocates the VM through Resource Manager (no more compute
        billed; the VM and its OS disk stay until teardown). Assigning the role needs
        C(Microsoft.Authorization/roleAssignments/write); without it the call stops before creating anything.
        O(self_stop_deallocate=false) - no identity; the VM powers off from inside and stays allocated (billed)
        until teardown.
    type: bool
    default: false
  force:
    description:
      - Delete, shrink or replace nodes another O(owner) made. Leave off unless the cluster is yours to change.
    type: bool
    default: false
notes:
  - On C(aws) the whole cluster is one C(RunInstances) call, tagged at launch (instances, volumes, network
    interfaces) with the cluster id; its ClientToken is derived from the cluster id and the request, so a retry or
    a re-run after the controller died never launches a second set. Instances require IMDSv2.
  - Only resources carrying both the cluster tag C(aiinfra-gpu-cluster) and C(aiinfra-managed-by) are the
    cluster's - listed, scaled and deleted. With O(state=absent), anything carrying the cluster tag alone (and on
    C(azure) the cluster's resource group C(aiinfra-<cluster>), when it holds anything else) is left alone, named in
    C(kept) and in a warning.
  - A call that fails removes the nodes it created whatever the error; when that rollback fails too, the task's
    warnings name what is left (possibly running and billed) and C(rollback_left) is true.
  - On C(aws) instances require IMDSv2 with a hop limit of 1, so containers on the nodes cannot reach the instance
    role; on C(gcp) nodes have C(block-project-ssh-keys) (only the cluster's key logs in).
  - On C(aws) every node gets the cluster's security group (see M(aiinfra.gpu_cluster.firewall)); cloud-init makes
    O(ssh_user) the image's default user, which receives the key pair.
  - On C(aws), O(wait) waits for the EC2 state C(running) (failing at O(wait_timeout)); EFA nodes have no public
    address, so SSH reachability is left to the playbook (C(ansible.builtin.wait_for_connection)).
  - On C(gcp) the whole cluster is one C(instances.bulkInsert) per zone tried, with a C(requestId) derived from the
    cluster id and the request (a retry or a re-run after a crash never makes a second set), nodes named
    C(<cluster>-<rank>) and labelled with the cluster id and rank, C(onHostMaintenance=TERMINATE) when they have
    GPUs, a compact placement policy C(aiinfra-<cluster>) where the machine family supports one, the key in the
    C(ssh-keys) metadata for O(ssh_user), and the network tag C(aiinfra-<cluster>) the firewall rules target.
  - On C(gcp) operations are awaited with C(zoneOperations.wait) within O(wait_timeout); one that ends DONE with an
    error fails the task. A stockout moves on to the next zone; a quota error fails at once naming the metric.
  - The local cloud needs podman (and runc and debootstrap to build its image) on the controller;
    C(make setup) installs them.
seealso:
  - module: aiinfra.gpu_cluster.instance_info
  - module: aiinfra.gpu_cluster.firewall
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

- name: Replace the node of rank 1 (lost); ranks 0 and 2 keep their nodes
  aiinfra.gpu_cluster.instance:
    cloud: local
    cluster: demo
    count: 3
    replace: [1]
    ssh_public_key: "{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"

- name: Eight p4d nodes on EC2, first capacity of three placements, EFA and placement group automatic
  aiinfra.gpu_cluster.instance:
    cloud: aws
    region: us-east-1
    cluster: llm-train
    count: 8
    instance_type: p4d.24xlarge
    image: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
    placements:
      - availability_zone: us-east-1a
      - availability_zone: us-east-1b
      - availability_zone: us-east-1a
        instance_type: p5.48xlarge
    root_volume_size: 500
    ssh_public_key: "{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"
  register: cluster

- name: Where it landed
  ansible.builtin.debug:
    msg: "{{ cluster.cluster.landed.availability_zone }} ({{ cluster.cluster.landed.instance_type }})"

- name: Eight A3 nodes (8 x H100 each) on Compute Engine, first zone with capacity
  aiinfra.gpu_cluster.instance:
    cloud: gcp
    project: my-training-project
    cluster: llm-train
    count: 8
    instance_type: a3-highgpu-8g
    image: projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11
    placements:
      - zone: us-central1-a
      - zone: us-central1-b
    root_volume_size: 500
    ssh_public_key: "{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"
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
    state: {description: 'running, stopped or pending.', type: str}
    private_address: {description: Address inside the cluster network., type: str, sample: 10.89.0.2}
    public_address: {description: 'Public address, if the node has one.', type: str}
    ssh_host: {description: Host the controller connects to., type: str}
    ssh_port: {description: SSH port., type: int, sample: 22}
    ssh_user: {description: SSH login user., type: str, sample: gpuadmin}
    instance_type: {description: Machine type., type: str}
    zone: {description: Zone / placement the node landed in., type: str}
    labels: {description: User labels on the node., type: dict}
    launch_time: {description: 'When the node was launched (ISO 8601, as the cloud reports it; local: the container''s creation).',
                  type: str, sample: '2026-12-01T00:40:01+00:00'}
    market: {description: 'C(on_demand) or C(spot) - as the cloud says, or the label O(spot) put on a local node.', type: str}
    owner: {description: 'The node''s C(aiinfra-owner) tag (empty on nodes made before owners were recorded).', type: str}
    ttl_minutes: {description: 'The node''s time to live in minutes (its C(aiinfra-ttl-minutes) tag); 0 - no limit.', type: int}
    deadline: {description: 'When the node''s time to live ends (ISO 8601, UTC) - its launch time + O(ttl); empty without a TTL.',
               type: str, sample: '2026-12-01T08:40:01Z'}
    hostvars:
      description:
        - The node's host variables, as the C(aiinfra.gpu_cluster.cluster) inventory plugin sets them - C(ansible_host),
          C(ansible_port), C(ansible_user), C(gpu_cluster_rank), C(gpu_cluster_private_address), C(gpu_cluster_node_id),
          C(gpu_cluster_zone), C(gpu_cluster_instance_type), C(gpu_cluster_state), C(gpu_cluster_launch_time) and
          C(gpu_cluster_price). The role's C(add_nodes) adds them to C(gpu_nodes) as they are.
      type: dict
    hourly_price:
      description:
        - The node's price per hour from the collection's price table (C(data/prices.yml), read on the controller by
          the module's action plugin); C(0) on C(local); null when the table has no price for the type and market
          ("price unknown", never a guess).
      type: float
      sample: 21.96
    price:
      description: Where C(hourly_price) comes from - C(hourly), C(currency), C(market), C(date), C(source),
        C(region), or C(reason) when unknown.
      type: dict
removed_nodes:
  description: With O(state=absent), the nodes as they were before the deletion (with launch time and price).
  returned: when state is absent
  type: list
  elements: dict
cost:
  description:
    - With O(state=absent), what the cluster cost from each node's launch to its deletion - C(cost) (null when a
      price is unknown), C(currency), C(node_hours), C(per_node), and C(text), e.g.
      C($43.92 (2.00 node-hours; 2 x p4d.24xlarge on-demand at $21.96/h)) or C(price unknown (...)).
  returned: when state is absent
  type: dict
kept:
  description:
    - With O(state=absent), what the teardown left alone, each with the reason - resources carrying the cluster
      tag without C(aiinfra-managed-by), and an Azure resource group that holds anything else.
  returned: when state is absent
  type: list
  elements: str
  sample: ["instance/i-0abc (carries aiinfra-gpu-cluster=llm but not aiinfra-managed-by)"]
rollback_left:
  description: On failure, true when the rollback of what the call created failed too (the warnings name what is left).
  returned: when a rollback failed
  type: bool
plan:
  description: What the call did (or, in check mode, would do), by rank.
  returned: always
  type: dict
  sample: {keep: [0, 1], create: [2], delete: [], start: [], replace: []}
cluster:
  description: Where the cluster lives (cloud, region, image, ...).
  returned: always
  type: dict
  contains:
    cloud: {description: The cloud., type: str, sample: aws}
    id: {description: The cluster id., type: str, sample: llm-train}
    region: {description: The region (cloud aws; cloud gcp when set)., type: str, returned: when cloud is aws, sample: us-east-1}
    project: {description: The project (cloud gcp)., type: str, returned: when cloud is gcp, sample: my-training-project}
    landed:
      description: Where this call launched nodes (cloud aws; on cloud gcp the zone, machine type and placement policy).
      returned: when nodes were launched on cloud aws or gcp
      type: dict
      sample: {availability_zone: us-east-1b, subnet_id: subnet-0abc, instance_type: p4d.24xlarge,
               placement_group: aiinfra-llm-train, count: 8, efa_interfaces: 4}
    failover:
      description: The placements skipped before landing, each with the reason (cloud aws and gcp).
      returned: when a placement was skipped on cloud aws or gcp
      type: list
      elements: dict
"""

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import (  # noqa: E402
    CloudModule, instance_argument_spec, run_instance)


def main():
    module = CloudModule(argument_spec=instance_argument_spec(), supports_check_mode=True)
    run_instance(module)


if __name__ == "__main__":
    main()
