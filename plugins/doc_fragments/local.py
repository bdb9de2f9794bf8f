# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  podman_conf:
    description:
      - Path of a C(containers.conf) for podman (sets C(CONTAINERS_CONF)).
      - When unset and C(CONTAINERS_CONF) is not in the environment, the collection writes one that selects
        the C(runc) runtime and no default ulimits, which works where C(crun) does not (hybrid cgroups).
      - Only for O(cloud=local).
    type: path
"""

    INSTANCE = r"""
options:
  cpus:
    description:
      - CPU limit per local node (podman C(--cpus)).
      - Only for O(cloud=local).
    type: str
  debian_mirror:
    description:
      - Debian mirror used to build the local node image.
      - Only for O(cloud=local).
    type: str
  memory:
    description:
      - Memory limit per local node (podman C(--memory), e.g. C(4g)).
      - Only for O(cloud=local).
    type: str
  privileged:
    description:
      - Run local nodes privileged (needed for Docker inside a node).
      - Only for O(cloud=local).
    type: bool
    default: false
  ssh_access:
    description:
      - How the controller reaches local nodes over SSH. C(address) uses each node's address on the cluster
        network (rootful podman); C(published) publishes port 22 on C(127.0.0.1) (rootless podman).
      - C(auto) picks C(address) as root, C(published) otherwise.
      - Only for O(cloud=local).
    type: str
    choices:
      - auto
      - address
      - published
    default: auto
"""
