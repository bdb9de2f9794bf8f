# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``local`` cloud (podman containers on the controller): ``options`` (its declared options), ``podman`` (the
CLI runner, error classification), ``image`` (the node image, built once) and ``provider`` (the nodes)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.image import (  # noqa: F401
    customise_rootfs, default_image, image_recipe)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.podman import (  # noqa: F401
    Podman, classify_podman)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local.provider import LocalProvider  # noqa: F401
