# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node-side object storage transfers: one small interface (base), one package-relative module per scheme.

The package uses relative imports only, so the same files run as collection module_utils (AnsiballZ) and,
copied to a node as ``aiinfra_storage``, as ``python -m aiinfra_storage push|pull|watch``.
"""
