# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""slurm.conf from the inventory and the nodes' facts (the role aiinfra.gpu_cluster.slurm); docs in
plugins/filter/slurm_nodes.yml and slurm_cluster_name.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import slurm as _slurm

_KEYS = ("inventory_hostname", "gpu_cluster_private_address", "ansible_host", "gpu_cluster_rank", "preflight_gpu")
_FACTS = ("processor_vcpus", "processor_count", "memtotal_mb", "hostname")


def slurm_nodes(hosts, memory_reserve_mb=_slurm.DEFAULT_MEMORY_RESERVE_MB):
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("slurm_nodes expects the nodes' hostvars as a list, got %s" % type(hosts).__name__)
    picked = []
    for hv in hosts:
        rec = dict((k, hv.get(k)) for k in _KEYS)
        facts = hv.get("ansible_facts") or {}
        rec["ansible_facts"] = dict((k, facts.get(k)) for k in _FACTS)
        picked.append(rec)
    try:
        return _slurm.nodes_from_hostvars(picked, memory_reserve_mb=memory_reserve_mb)
    except _slurm.SlurmConfError as exc:
        raise AnsibleFilterError("slurm_nodes: %s" % exc)


def slurm_cluster_name(name):
    try:
        return _slurm.cluster_name(name)
    except _slurm.SlurmConfError as exc:
        raise AnsibleFilterError("slurm_cluster_name: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"slurm_nodes": slurm_nodes, "slurm_cluster_name": slurm_cluster_name}
