# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster
short_description: The nodes of a GPU cluster, from any cloud, by cluster id
version_added: 0.1.0
description:
  - Lists the nodes of one cluster (found by the cluster id every resource carries) into group C(gpu_nodes),
    ordered by rank, with C(gpu_cluster_rank), C(gpu_cluster_private_address) and the connection variables
    (C(ansible_host), C(ansible_port), C(ansible_user)).
  - The file must end in C(.gpu_cluster.yml) or C(.gpu_cluster.yaml), or be named C(gpu_cluster.yml).
  - Options mirror M(aiinfra.gpu_cluster.instance).
author:
  - aiinfra platform team (@aiinfra)
extends_documentation_fragment:
  - aiinfra.gpu_cluster.cluster
  - aiinfra.gpu_cluster.cloud_shared
  - aiinfra.gpu_cluster.local
  - aiinfra.gpu_cluster.aws
  - aiinfra.gpu_cluster.azure
  - aiinfra.gpu_cluster.gcp
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [aiinfra.gpu_cluster.cluster]
  cluster:
    description:
      - The cluster id (see M(aiinfra.gpu_cluster.instance)).
      - Required on C(aws), C(gcp) and C(azure) (a shared account has no default cluster); on C(local) it is C(demo)
        when unset.
    type: str
    required: false
    env:
      - name: GPU_CLUSTER_NAME
  known_hosts_file:
    description:
      - The cluster's known-hosts file on the controller, set on every node as C(ansible_ssh_common_args)
        (C(-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=...)) with C(ansible_host_key_checking) true - a
        node's host key is recorded at first contact and checked on every later one; a changed key is refused.
      - The same file the playbooks use (the role variable C(gpu_cluster_known_hosts_file)).
    type: path
    default: ~/.cache/aiinfra/known_hosts/<cloud>-<cluster>
  group:
    description: The group the nodes go in.
    type: str
    default: gpu_nodes
  ssh_private_key_file:
    description: Set as C(ansible_ssh_private_key_file) on every node.
    type: path
  ssh_access:
    description: As in M(aiinfra.gpu_cluster.instance). Only for O(cloud=local).
    type: str
    choices: [auto, address, published]
    default: auto
  include_stopped:
    description: List stopped nodes too (their address is empty).
    type: bool
    default: false
  pipelining:
    description:
      - Set C(ansible_pipelining) true on the nodes' group, so that every module runs in one ssh exchange (no
        temporary files on the node; the launch round of M(aiinfra.gpu_cluster.torchrun_launch) and the roles' tasks
        take a fraction of the round trips) whatever the configuration, as C(ansible.cfg)'s C(pipelining = True)
        would. It is a group variable, so a C(group_vars) file of the group overrides it.
      - The nodes' C(sudo) must not require a tty (no C(Defaults requiretty)); the images the clouds' modules start
        do not. V(false) leaves pipelining to Ansible's configuration (off by default).
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventories/demo.gpu_cluster.yml
plugin: aiinfra.gpu_cluster.cluster
cloud: local
cluster: demo
ssh_private_key_file: ~/.ssh/id_ed25519
"""

import os  # noqa: E402
import shlex  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import (  # noqa: E402
    sort_nodes, validate_cluster_id)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError  # noqa: E402
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.providers import (  # noqa: E402
    get_provider, inventory_options)
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.prices import price_for  # noqa: E402


KNOWN_HOSTS_DIR = "~/.cache/aiinfra/known_hosts"


def known_hosts_path(cloud, cluster):
    """The cluster's known-hosts file (the role's default gpu_cluster_known_hosts_file is the same path)."""
    return "%s/%s-%s" % (KNOWN_HOSTS_DIR, cloud, cluster)


def ssh_host_key_vars(known_hosts):
    """The connection variables that make ssh record a node's key at first contact and check it afterwards."""
    return {
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=%s" % shlex.quote(known_hosts),
        "ansible_host_key_checking": True,
    }


class InventoryModule(BaseInventoryPlugin):
    NAME = "aiinfra.gpu_cluster.cluster"

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        return path.endswith((".gpu_cluster.yml", ".gpu_cluster.yaml", "/gpu_cluster.yml", "/gpu_cluster.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cloud = self.get_option("cloud")
        cluster = self.get_option("cluster") or ("demo" if cloud == "local" else "")
        group = self.get_option("group")
        if not cluster:
            raise AnsibleError("aiinfra.gpu_cluster.cluster (%s): no cluster name on cloud %s - set cluster in the file "
                               "or GPU_CLUSTER_NAME (a shared account has no default cluster)" % (path, cloud))
        try:
            validate_cluster_id(cluster)
            options = dict((name, self.get_option(name)) for name in inventory_options(cloud))
            nodes = get_provider(cloud, options).list_nodes(cluster)
        except CloudError as exc:
            raise AnsibleError("aiinfra.gpu_cluster.cluster (%s): %s" % (path, exc))
        self.inventory.add_group(group)
        self.inventory.set_variable(group, "gpu_cluster_cloud", cloud)
        self.inventory.set_variable(group, "gpu_cluster_name", cluster)
        if self.get_option("pipelining"):
            self.inventory.set_variable(group, "ansible_pipelining", True)
        key_file = self.get_option("ssh_private_key_file")
        known_hosts = self.get_option("known_hosts_file")
        if not known_hosts or known_hosts.endswith("<cloud>-<cluster>"):
            known_hosts = known_hosts_path(cloud, cluster)
        known_hosts = os.path.expanduser(known_hosts)
        if nodes and not os.path.isdir(os.path.dirname(known_hosts)):
            # ssh does not make it, and without it no key would be recorded (every contact a first contact)
            try:
                os.makedirs(os.path.dirname(known_hosts), mode=0o700, exist_ok=True)
            except OSError as exc:
                raise AnsibleError("aiinfra.gpu_cluster.cluster (%s): cannot make the directory of the known-hosts "
                                   "file %s: %s" % (path, known_hosts, exc))
        for node in sort_nodes(nodes):
            if node.state != "running" and not self.get_option("include_stopped"):
                continue
            host = self.inventory.add_host(node.name, group=group)
            hostvars = node.hostvars()
            hostvars["gpu_cluster_price"] = price_for(cloud, node.instance_type, node.market or "on_demand")
            if key_file:
                hostvars["ansible_ssh_private_key_file"] = key_file
            hostvars.update(ssh_host_key_vars(known_hosts))
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
