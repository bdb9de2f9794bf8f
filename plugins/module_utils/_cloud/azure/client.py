# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Resource Manager through one retrying wrapper: every SDK call the provider makes goes through
:class:`RetryingArm` (azure-core's own retries are off)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.errors import classify, with_detail


def plain(obj):
    """An SDK model as ARM's JSON (dict with camelCase keys); anything else as it is."""
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return obj


class RetryingArm(retry.RetryingClient):
    """SDK calls retried by the one retry helper on transient errors only (10 attempts within 180 s by default,
    honouring Retry-After); ``calls`` counts the attempts. ``context(extra)``: the error context of a call (the
    provider adds which credential it used)."""

    name = "azure"

    def __init__(self, policy, log=None, context=None):
        super(RetryingArm, self).__init__(lambda exc, ctx: with_detail(classify(exc, ctx), exc), policy, log)
        self._context = context or (lambda extra: dict(extra or {}))

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``; ``context=`` goes to the error classification, ``listing=True`` reads a list to
        the end (each item as plain JSON)."""
        context = self._context(kwargs.pop("context", None))
        listing = kwargs.pop("listing", False)

        def once():
            result = fn(*args, **kwargs)
            if listing:
                return [plain(item) for item in result]
            return result

        return self.attempt(once, context)
