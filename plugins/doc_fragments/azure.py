# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  authority_host:
    description:
      - The Entra ID authority, e.g. C(https://login.microsoftonline.us). Defaults to C(AZURE_AUTHORITY_HOST),
        else the public cloud's. A non-Microsoft authority (a test server) is used without instance discovery.
      - Only for O(cloud=azure).
    type: str
  client_id:
    description:
      - The application (client) id of a service principal. Defaults to C(AZURE_CLIENT_ID).
      - Only for O(cloud=azure).
    type: str
  location:
    description:
      - The Azure location of the cluster, for example C(eastus). The firewall's NSG and the resource
        group live there; nodes too unless the instance module's placements say otherwise.
      - Only for O(cloud=azure).
    type: str
  resource_group:
    description:
      - The resource group for the cluster's resources. Unset, the cluster gets a group of its own, C(aiinfra-<cluster>),
        created by the collection and deleted whole at teardown. A group named here is never deleted;
        only what carries the cluster tag is.
      - Only for O(cloud=azure).
    type: str
  secret:
    description:
      - The service principal's client secret. Defaults to C(AZURE_CLIENT_SECRET) (azure-identity) or
        C(AZURE_SECRET) (AWX). Never logged. With no secret anywhere, C(DefaultAzureCredential) is used
        (managed identity, C(az login)).
      - Only for O(cloud=azure).
    type: str
  subscription_id:
    description:
      - The Azure subscription id. Defaults to C(AZURE_SUBSCRIPTION_ID).
      - Only for O(cloud=azure).
    type: str
  tenant:
    description:
      - The tenant (directory) id of a service principal. Defaults to C(AZURE_TENANT_ID) (azure-identity's
        name) or C(AZURE_TENANT) (what AWX injects).
      - Only for O(cloud=azure).
    type: str
requirements:
  - azure-identity, azure-mgmt-compute, azure-mgmt-network, azure-mgmt-resource (for O(cloud=azure), on
    the host that runs the module)
"""

    INSTANCE = r"""
options:
  self_stop_deallocate:
    description:
      - 'With O(self_stop) (C(gpu_cluster_ttl) / C(gpu_cluster_idle_minutes)) - how a node stops itself.
        Unset or C(true): each VM gets a system-assigned managed identity and a role assignment on itself
        (O(self_stop_role)), and the lifetime timer deallocates it through Resource Manager (a token from
        the instance metadata service, C(POST .../virtualMachines/NAME/deallocate)): no more compute is
        billed, the VM and its OS disk stay until teardown, which removes the role assignment too. Assigning
        the role needs C(Microsoft.Authorization/roleAssignments/write) on the resource group (Owner,
        User Access Administrator, Role Based Access Control Administrator); without it the module stops
        before creating anything, naming the permission.'
      - 'C(false): no identity; the node powers off from inside, and Azure keeps the VM allocated - billed
        - until teardown.'
      - Only for O(cloud=azure).
    type: bool
  self_stop_role:
    description:
      - 'The role the VM''s identity gets on the VM itself for O(self_stop_deallocate): a role definition
        GUID or its resource id. Default Virtual Machine Contributor (C(9980e02c-c2be-4d73-94e8-173b1dc7cf3c)),
        which lets any process on the node manage this VM (not others). Name a custom role whose only
        actions are C(Microsoft.Compute/virtualMachines/read) and C(Microsoft.Compute/virtualMachines/deallocate/action)
        to narrow it.'
      - Only for O(cloud=azure).
    type: str
  subnet_id:
    description:
      - Bring your own network - the resource id of a subnet for the nodes (in the nodes' location). Unset,
        the cluster gets a VNet of its own per location with the firewall's NSG on its subnet.
      - Only for O(cloud=azure).
    type: str
"""
