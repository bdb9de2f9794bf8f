# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: the Prometheus range queries for the nodes' utilisation over a window (the monitoring role asks them
from its Prometheus node after a run; the run report shapes and draws the answers)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.utilisation import query_list


def utilisation_queries(start, end, scrape_interval="10s", combined=False):
    try:
        return query_list(start, end, scrape_interval, boolean(combined, strict=True))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("utilisation_queries: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"utilisation_queries": utilisation_queries}
