# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate's filters (documented in health_schedule.yml, health_expect.yml and health_verdict.yml): thin
wrappers over plugins/plugin_utils/health.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import health


def health_schedule(hosts, max_rounds=0):
    return health.pair_schedule(list(hosts or []), int(max_rounds or 0) or None)


def health_expect(instance_type):
    try:
        return health.expectations(instance_type or "")
    except health.HealthError as exc:
        raise AnsibleFilterError(str(exc))


def health_verdict(nodes, pairs=None, cluster="", method=""):
    try:
        result = health.verdict(dict(nodes or {}), dict(pairs or {}))
    except health.HealthError as exc:
        raise AnsibleFilterError(str(exc))
    result["text"] = health.report_text(result, cluster, method)
    result["summary"] = health.summary_entry(result)
    return result


class FilterModule(object):
    def filters(self):
        return {"health_schedule": health_schedule, "health_expect": health_expect, "health_verdict": health_verdict}
