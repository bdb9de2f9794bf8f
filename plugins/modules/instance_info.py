#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: instance_info
short_description: The nodes of a GPU cluster (read-only)
version_added: 0.1.0
description:
  - Lists the nodes of a cluster by its cluster id, ordered by rank, and the other resources that carry the id.
  - Never changes anything.
author:
  - aiinfra platform team (@aiinfra)
extends_documentation_fragment:
  - aiinfra.gpu_cluster.cluster
  - aiinfra.gpu_cluster.cloud_shared
  - aiinfra.gpu_cluster.local
  - aiinfra.gpu_cluster.aws
  - aiinfra.gpu_cluster.azure
  - aiinfra.gpu_cluster.gcp
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
seealso:
  - module: aiinfra.gpu_cluster.instance
"""

EXAMPLES = r"""
- name: Find the nodes of cluster demo
  aiinfra.gpu_cluster.instance_info:
    cluster: demo
  register: info

- name: Rank 0's private address
  ansible.builtin.debug:
    msg: "{{ info.nodes[0].private_address }}"
"""

RETURN = r"""
nodes:
  description:
    - The cluster's nodes ordered by rank (same fields as M(aiinfra.gpu_cluster.instance) returns, launch time and hourly
      price included).
    - C(deadline) - the end of the node's time to live (its launch time + its TTL), ISO 8601 UTC; empty without one.
  returned: always
  type: list
  elements: dict
resources:
  description: Other resources carrying the cluster id, as C(kind/name).
  returned: always
  type: list
  elements: str
  sample: [network/aiinfra-demo]
exists:
  description: Whether anything of the cluster exists.
  returned: always
  type: bool
cluster:
  description: Where the cluster lives.
  returned: always
  type: dict
"""

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import (  # noqa: E402
    CloudModule, cluster_argument_spec, run_instance_info)


def main():
    module = CloudModule(argument_spec=cluster_argument_spec(), supports_check_mode=True)
    run_instance_info(module)


if __name__ == "__main__":
    main()
