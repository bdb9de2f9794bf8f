# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which firewall rules are the collection's own (shared by the firewall module and every cloud's firewall).

A rule of the cluster's firewall that carries one of these descriptions was made by the collection: when it is no
longer asked for (a CIDR dropped from ``admin_cidrs``) the next run revokes it. Rules with other descriptions are
somebody else's and stay unless ``purge``.
"""

from __future__ import annotations

SSH_RULE = "SSH from admin_cidrs"
SELF_IN_RULE = "all traffic between cluster nodes (NCCL, EFA)"
SELF_OUT_RULE = "all traffic between cluster nodes (EFA)"
OUT_RULE = "all outbound"
MANAGED_DESCRIPTIONS = frozenset((SSH_RULE, SELF_IN_RULE, SELF_OUT_RULE, OUT_RULE))


def made_by_us(rule):
    """Whether a rule (:class:`RuleSpec`) read back from a cluster's firewall is one the collection made."""
    return (rule.description or "") in MANAGED_DESCRIPTIONS
