# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``gcp`` cloud (Compute Engine v1 REST through google-auth): ``errors`` (classification), ``shapes`` (pure
request and response builders), ``api`` (credentials, the HTTP session, operations), ``provider`` (nodes: one
bulkInsert per cluster and zone, zone failover, teardown) and ``firewall`` (the cluster's firewall rules)."""
