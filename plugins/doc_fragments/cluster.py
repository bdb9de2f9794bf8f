# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment(object):
    # The options that find a cluster on any cloud.
    DOCUMENTATION = r"""
options:
  cloud:
    description:
      - Which cloud the cluster lives on.
      - C(local) runs every node as a podman container (systemd + sshd) on the controller and needs no account.
    type: str
    default: local
    choices: [local]
  cluster:
    description:
      - The cluster id. Every resource the collection creates carries it as a tag or label, which is how
        the cluster is found again (no state file).
      - 1-40 characters, lowercase letters, digits and C(-), starting with a letter, not ending with C(-),
        so that every cloud accepts it.
    type: str
    required: true
    aliases: [name]
"""

    # Options of the local (podman) cloud.
    LOCAL = r"""
options:
  podman_conf:
    description:
      - Path of a C(containers.conf) for podman (sets C(CONTAINERS_CONF)).
      - When unset and C(CONTAINERS_CONF) is not in the environment, the collection writes one that selects
        the C(runc) runtime and no default ulimits, which works where C(crun) does not (hybrid cgroups).
      - Only for O(cloud=local).
    type: path
"""
