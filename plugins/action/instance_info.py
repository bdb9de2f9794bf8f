# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.instance_info: the module's nodes with their hourly prices
(``data/prices.yml``, read on the controller; see plugins/action/instance.py)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.action.instance import ActionModule as InstanceAction


class ActionModule(InstanceAction):
    MODULE = "aiinfra.gpu_cluster.instance_info"
