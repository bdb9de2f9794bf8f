# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.instance (documented in plugins/modules/instance.py).

Runs the module as usual, then adds each node's hourly price from ``data/prices.yml`` on the controller:
the price table is data of the collection, which a module cannot read where it runs (AnsiballZ ships only
module_utils). With ``state: absent`` it first reads the cluster's nodes (their launch times), and after the
deletion returns ``cost``: what the cluster cost from each node's launch to its deletion.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import cluster_argument_spec
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.prices import PriceDataError, cost, price_nodes
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.progress import Heartbeat

display = Display()


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False
    MODULE = "aiinfra.gpu_cluster.instance"

    def _priced(self, result, args):
        """The module's result with every node's price (a price file that cannot be read is a warning)."""
        if result.get("failed") or not isinstance(result.get("nodes"), list):
            return result
        cloud = (result.get("cluster") or {}).get("cloud") or args.get("cloud") or "local"
        try:
            result["nodes"] = price_nodes(result["nodes"], cloud, spot=bool(args.get("spot")))
        except PriceDataError as exc:
            result.setdefault("warnings", []).append("no prices: %s" % exc)
        # the price is a host variable too (the inventory plugin sets it from the same table)
        for node in result["nodes"]:
            if isinstance(node, dict) and isinstance(node.get("hostvars"), dict):
                node["hostvars"] = dict(node["hostvars"], gpu_cluster_price=node.get("price") or {})
        return result

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        before = None
        if self.MODULE.endswith(".instance") and args.get("state") == "absent":
            info_args = dict((k, v) for k, v in args.items() if k in cluster_argument_spec())
            before = self._execute_module(module_name="aiinfra.gpu_cluster.instance_info", module_args=info_args,
                                          task_vars=task_vars)
            if before.get("failed"):
                return dict(result, **before)
            before = self._priced(before, args)
        # creating nodes (and building the local cloud's base image) takes minutes: a line every 15 s meanwhile
        verb = ("reading" if self.MODULE.endswith("_info") else "checking" if self._task.check_mode
                else "deleting" if args.get("state") == "absent" else "creating/reconciling")
        what = "%s the %s nodes of cluster %s" % (verb, args.get("cloud", "?"), args.get("cluster", "?"))
        with Heartbeat(display, what, every=15.0):
            result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
        result = self._priced(result, args)
        if before is not None and not result.get("failed"):
            try:
                result["removed_nodes"] = before.get("nodes") or []
                result["cost"] = cost(result["removed_nodes"], time.time())
            except PriceDataError as exc:
                result.setdefault("warnings", []).append("no cost: %s" % exc)
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
