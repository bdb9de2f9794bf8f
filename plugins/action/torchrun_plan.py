# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_plan (documented in plugins/modules/torchrun_plan.py): the job's plan,
once, on the controller (plugin_utils ``torchrun.plan`` does the work)."""

from __future__ import annotations

import os
import random

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import SpecError
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.plan import plan_record

ARGUMENT_SPEC = argument_spec_for("torchrun_plan")


def node_items(hostvars, hosts):
    """What the layout needs of each node's variables: its name, rank and private address."""
    items = []
    for host in hosts:
        hv = hostvars[host]

        def var(name, hv=hv):
            return hv[name] if name in hv else None
        address = var("gpu_cluster_private_address") or var("ansible_host") or host
        items.append({"host": host, "rank": var("gpu_cluster_rank"), "address": str(address)})
    return items


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hosts = args["hosts"] if args["hosts"] is not None else list(task_vars.get("ansible_play_hosts_all") or [])
        try:
            record = plan_record(node_items(task_vars["hostvars"], hosts), args["settings"], args["attempts"],
                                 cwd=os.getcwd(), rand=random.SystemRandom())
        except SpecError as exc:
            raise AnsibleActionFail("torchrun: %s" % exc)
        result.update(record, changed=False)
        return result
