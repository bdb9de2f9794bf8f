# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which provider serves which ``cloud``.

Every provider file is imported statically so AnsiballZ ships it with the
module; each provider guards its own SDK import and reports a missing SDK only
when its cloud is chosen.
"""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import Provider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.provider import LocalProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import options as _options

PROVIDERS = {
    "aws": AwsProvider,
    "azure": AzureProvider,
    "gcp": GcpProvider,
    "local": LocalProvider,
}


#: every cloud's declarations (options, requirements), in PROVIDERS' order
CLOUDS = tuple(cls.cloud for _name, cls in sorted(PROVIDERS.items()))


def get_provider(cloud, options=None, log=None):
    try:
        cls = PROVIDERS[cloud]
    except KeyError:
        raise ConfigError("unknown cloud %r" % (cloud,), hint="Choose one of: %s" % ", ".join(sorted(PROVIDERS)))
    return cls(options, log=log)


def firewall_clouds():
    """The clouds that have a firewall (their provider implements ``ensure_firewall``)."""
    return tuple(cls.cloud for _name, cls in sorted(PROVIDERS.items())
                 if cls.ensure_firewall is not Provider.ensure_firewall)


def argument_spec(*scopes, **kwargs):
    """The union argument spec of every cloud's options of ``scopes`` (``cluster``, ``instance``, ``firewall``);
    ``clouds``: only these clouds' declarations."""
    return _options.argument_spec(kwargs.get("clouds") or CLOUDS, scopes)


def check_cloud_options(cloud, params, spec):
    """Refuse (ConfigError) options of another cloud set in ``params``; ``spec`` the module's argument spec."""
    message = _options.foreign_options(cloud, params, CLOUDS, spec)
    if message:
        raise ConfigError(message)


def cloud_options(cloud, params, spec=None):
    """The module parameters cloud ``cloud``'s provider reads, after refusing another cloud's options that are set
    (``spec``: the module's argument spec, whose defaults are not "set"; default every cloud option's own)."""
    check_cloud_options(cloud, params, spec if spec is not None else argument_spec(*_options.SCOPES))
    return _options.cloud_options(PROVIDERS[cloud].cloud, params)


def inventory_options(cloud):
    """The options the inventory plugin reads for ``cloud``: how to reach it, and what its nodes' addresses need."""
    return [o.name for o in PROVIDERS[cloud].cloud.options if o.scope == "cluster" or o.inventory]
