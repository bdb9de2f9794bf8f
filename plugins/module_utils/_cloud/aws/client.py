# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 through one retrying wrapper: every call the provider makes goes through :class:`RetryingEc2`."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.errors import classify


class RetryingEc2(retry.RetryingClient):
    """A boto3 EC2 client (made by ``connect()`` at the first call) whose every operation is retried by the one
    retry helper on transient errors only (botocore's own retries are off); ``calls`` counts the attempts."""

    name = "aws"

    def __init__(self, connect, policy, log=None, region="", client=None):
        super(RetryingEc2, self).__init__(classify, policy, log)
        self._connect = connect
        self._client = client
        self._region = region

    @property
    def client(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    @property
    def region(self):
        if self._client is not None:
            return self._client.meta.region_name
        return self._region

    def call(self, op, context=None, **params):
        """One EC2 operation (``op``: the boto3 method's name); ``context`` goes to the error classification."""
        method = getattr(self.client, op)
        return self.attempt(lambda: method(**params), dict(context or {}, region=self.region), op)

    def pages(self, op, key, context=None, **params):
        """Every item under ``key`` of a paginated operation, over all pages."""
        items = []
        while True:
            page = self.call(op, context=context, **params)
            items.extend(page.get(key) or [])
            token = page.get("NextToken")
            if not token:
                return items
            params["NextToken"] = token
