# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The options that find a cluster on any cloud. Each cloud's own options are declared next to its provider
    # (plugins/module_utils/_cloud/<cloud>/options.py); their fragments (aws, azure, gcp, local, cloud_shared)
    # are generated from the declarations.
    DOCUMENTATION = r"""
options:
  cloud:
    description:
      - Which cloud the cluster lives on.
      - C(local) runs every node as a podman container (systemd + sshd) on the controller and needs no account.
      - C(aws) runs every node as an EC2 instance (needs C(boto3) and AWS credentials).
      - C(azure) runs every node as an Azure VM (needs C(azure-identity), C(azure-mgmt-compute), C(azure-mgmt-network)
        and C(azure-mgmt-resource), and Azure credentials).
      - C(gcp) runs every node as a Compute Engine VM (needs C(google-auth) and C(requests), and Google credentials).
    type: str
    default: local
    choices: [aws, azure, gcp, local]
  cluster:
    description:
      - The cluster id. Every resource the collection creates carries it as a tag or label, which is how
        the cluster is found again (no state file).
      - 1-40 characters, lowercase letters, digits and C(-), starting with a letter, not ending with C(-),
        so that every cloud accepts it.
    type: str
    required: true
    aliases: [name]
"""
