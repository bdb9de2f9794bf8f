# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``aws`` cloud (EC2 through boto3): ``errors`` (classification), ``shapes`` (pure request and response
builders), ``provider`` (nodes: launch with failover, teardown) and ``firewall`` (the security group)."""
