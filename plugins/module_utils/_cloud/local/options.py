# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of cloud ``local``, declared once (see :mod:`.._cloud.options`)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import Cloud, Option

CLOUD = Cloud("local", options=(
    Option("podman_conf", ("Path of a C(containers.conf) for podman (sets C(CONTAINERS_CONF)).",
                           "When unset and C(CONTAINERS_CONF) is not in the environment, the collection writes one "
                           "that selects the C(runc) runtime and no default ulimits, which works where C(crun) does "
                           "not (hybrid cgroups)."), type="path"),
    Option("privileged", ("Run local nodes privileged (needed for Docker inside a node).",), type="bool",
           default=False, scope="instance"),
    Option("cpus", ("CPU limit per local node (podman C(--cpus)).",), scope="instance"),
    Option("memory", ("Memory limit per local node (podman C(--memory), e.g. C(4g)).",), scope="instance"),
    Option("ssh_access", ("How the controller reaches local nodes over SSH. C(address) uses each node's address on "
                          "the cluster network (rootful podman); C(published) publishes port 22 on C(127.0.0.1) "
                          "(rootless podman).",
                          "C(auto) picks C(address) as root, C(published) otherwise."),
           choices=("auto", "address", "published"), default="auto", scope="instance", inventory=True),
    Option("spot", ("Mark local nodes as spot nodes (the label C(aiinfra-market=spot); their C(market) is C(spot), "
                    "else C(on_demand)). Nothing else changes: no cloud takes a local node back - writing "
                    "C(/run/aiinfra/spot-notice) on a node plays the notice. It lets a test follow the spot recovery "
                    "(C(gpu_cluster_spot_fallback_after)) on local nodes.",), type="bool", scope="instance"),
    Option("debian_mirror", ("Debian mirror used to build the local node image.",), scope="instance"),
))
