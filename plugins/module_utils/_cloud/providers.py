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
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import LocalProvider

PROVIDERS = {
    "aws": AwsProvider,
    "azure": AzureProvider,
    "gcp": GcpProvider,
    "local": LocalProvider,
}


def get_provider(cloud, options=None, log=None):
    try:
        cls = PROVIDERS[cloud]
    except KeyError:
        raise ConfigError("unknown cloud %r" % (cloud,), hint="Choose one of: %s" % ", ".join(sorted(PROVIDERS)))
    return cls(options, log=log)


def cloud_options(cloud, params, defaults=None):
    """The module parameters a cloud reads; complain about another cloud's options that are set.

    ``defaults`` (option -> default of the module's argument spec): an option left at its default is not set.
    """
    cls = PROVIDERS[cloud]
    mine = set(cls.options)
    defaults = defaults or {}
    foreign = sorted(set(
        name for other, pcls in PROVIDERS.items() if other != cloud
        for name in pcls.options if name not in mine and params.get(name) not in (None, [], {}, False)
        and params.get(name) != defaults.get(name)
    ))
    if foreign:
        raise ConfigError("option(s) %s do not apply to cloud %r" % (", ".join(foreign), cloud),
                          hint="Remove them, or set cloud to the cloud they belong to")
    return dict((name, params.get(name)) for name in mine)
