# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the torchrun role: torchrun_layout, torchrun_rerun_plan, torchrun_attempt,
torchrun_checkpoints, spot_fallback. Each one's documentation is the YAML file of its name beside this file (ansible-doc reads it
there because this file carries no DOCUMENTATION of its own)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import SpecError
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.recovery import attempt_record
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.recovery import spot_fallback as _spot_fallback
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.checkpoints import gather
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import layout, rerun_plan


def _items(hostvars_list):
    items = []
    for hv in hostvars_list or []:
        host = hv.get("inventory_hostname")
        address = hv.get("gpu_cluster_private_address") or hv.get("ansible_host") or host
        items.append({"host": host, "rank": hv.get("gpu_cluster_rank"), "address": str(address)})
    return items


def torchrun_layout(hostvars_list):
    try:
        return layout(_items(hostvars_list))
    except SpecError as exc:
        raise AnsibleFilterError("torchrun_layout: %s" % exc)


def torchrun_rerun_plan(states):
    """``states``: the nodes' states from one poll (a dict host -> state, or a list)."""
    if isinstance(states, dict):
        states = list(states.values())
    return rerun_plan(list(states or []))


def torchrun_attempt(summary, watch=None, lost=None, recovery=None):
    """One attempt's record for the report (docs: torchrun_attempt.yml)."""
    return attempt_record(summary, watch, lost, recovery)


def spot_fallback(attempts, lost, after=2):
    """The lost nodes whose replacement is launched on-demand (docs: spot_fallback.yml)."""
    if not isinstance(attempts, (list, tuple)) or not isinstance(lost, (list, tuple)):
        raise AnsibleFilterError("spot_fallback expects the attempts and the lost nodes as lists")
    try:
        return _spot_fallback(attempts, lost, int(after))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("spot_fallback: after must be a whole number: %s" % exc)


def torchrun_checkpoints(hostvars_list, uri):
    """What each node restored and uploaded (torchrun_checkpoint_uri), for torchrun_report's ``checkpoints``."""
    return {"uri": uri, "nodes": gather(hostvars_list)}


class FilterModule(object):
    def filters(self):
        return {"torchrun_layout": torchrun_layout, "torchrun_rerun_plan": torchrun_rerun_plan, "torchrun_attempt": torchrun_attempt,
                "torchrun_checkpoints": torchrun_checkpoints, "spot_fallback": spot_fallback}
