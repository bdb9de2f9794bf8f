# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  credentials_file:
    description:
      - A service-account key file (JSON). Its C(token_uri) is honoured.
      - Defaults to C(GCP_SERVICE_ACCOUNT_FILE), C(GOOGLE_APPLICATION_CREDENTIALS), else Application Default
        Credentials (C(gcloud auth application-default login), or the VM's service account).
      - Only for O(cloud=gcp).
    type: path
  network:
    description:
      - The VPC network of the nodes and the firewall rules (default C(default)).
      - Only for O(cloud=gcp).
    type: str
  project:
    description:
      - The Google Cloud project id. Defaults to C(GCP_PROJECT), C(GOOGLE_CLOUD_PROJECT), else the credentials'
        own project.
      - Only for O(cloud=gcp).
    type: str
requirements:
  - google-auth and requests (for O(cloud=gcp), on the host that runs the module)
"""

    INSTANCE = r"""
options:
  accelerators:
    description:
      - GPUs to attach to machine types without built-in ones (N1), e.g. one entry with O(accelerators[].type=nvidia-tesla-v100)
        and O(accelerators[].count=8). A2, A3, A4 and G2 types have their GPUs built in; setting this
        with them is an error.
      - Only for O(cloud=gcp).
    type: list
    elements: dict
    suboptions:
      type:
        description:
          - The GPU type (an accelerator type of the zone), e.g. C(nvidia-tesla-t4).
        type: str
        required: true
      count:
        description:
          - GPUs per node.
        type: int
        default: 1
  subnetwork:
    description:
      - A subnetwork of O(network) (by name; it must exist in the region of every placement). Default
        the network's subnetwork of the region (auto-mode networks).
      - Only for O(cloud=gcp).
    type: str
"""

    FIREWALL = r"""
options:
  allow_network_rules:
    description:
      - Accept rules of the network itself that admit the nodes from wider than O(admin_cidrs) (for example
        the C(default) network's C(default-allow-ssh) from C(0.0.0.0/0) and C(default-allow-internal)
        from C(10.128.0.0/9)). Unset, the module fails naming them; delete or narrow them, or use a network
        of your own.
      - Only for O(cloud=gcp).
    type: bool
    default: false
"""
