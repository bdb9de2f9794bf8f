# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of cloud ``azure``, declared once (see :mod:`.._cloud.options`)."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.options import Cloud, Option

CLOUD = Cloud("azure", requirements=(
    "azure-identity, azure-mgmt-compute, azure-mgmt-network, azure-mgmt-resource (for O(cloud=azure), on the host "
    "that runs the module)",), options=(
    # how to reach Azure Resource Manager
    Option("subscription_id", ("The Azure subscription id. Defaults to C(AZURE_SUBSCRIPTION_ID).",)),
    Option("tenant", ("The tenant (directory) id of a service principal. Defaults to C(AZURE_TENANT_ID) "
                      "(azure-identity's name) or C(AZURE_TENANT) (what AWX injects).",)),
    Option("client_id", ("The application (client) id of a service principal. Defaults to C(AZURE_CLIENT_ID).",)),
    Option("secret", ("The service principal's client secret. Defaults to C(AZURE_CLIENT_SECRET) (azure-identity) or "
                      "C(AZURE_SECRET) (AWX). Never logged. With no secret anywhere, C(DefaultAzureCredential) is used "
                      "(managed identity, C(az login)).",), no_log=True),
    Option("authority_host", ("The Entra ID authority, e.g. C(https://login.microsoftonline.us). Defaults to "
                              "C(AZURE_AUTHORITY_HOST), else the public cloud's. A non-Microsoft authority (a test "
                              "server) is used without instance discovery.",)),
    Option("endpoint_url", ("The Resource Manager root (default C(https://management.azure.com), a sovereign cloud's, "
                            "or a test server's); tokens are asked for its C(/.default) scope.",)),
    Option("location", ("The Azure location of the cluster, for example C(eastus). The firewall's NSG and the resource "
                        "group live there; nodes too unless the instance module's placements say otherwise.",)),
    Option("resource_group", ("The resource group for the cluster's resources. Unset, the cluster gets a group of its "
                              "own, C(aiinfra-<cluster>), created by the collection and deleted whole at teardown. A "
                              "group named here is never deleted; only what carries the cluster tag is.",)),
    # the instance module
    Option("placements", ("Each entry names a O(placements[].location) and optionally a O(placements[].zone); "
                          "C(AllocationFailed), C(ZonalAllocationFailed), C(SkuNotAvailable) and "
                          "C(OverconstrainedAllocationRequest) move on to the next at once.",),
           type="list", elements="dict", scope="instance", suboptions=(
               Option("location", ("An Azure location, e.g. C(eastus).",)),
               Option("zone", ("An availability zone (C(1), C(2), C(3)) of O(placements[].location). Zonal nodes get "
                               "no availability set (Azure allows one or the other); leave unset for ND-series "
                               "InfiniBand clusters.",)),)),
    Option("spot", ("Launch Spot VMs, deleted on eviction.",), type="bool", scope="instance"),
    Option("reservation", (
        "Launch into a capacity reservation group (C(capacityReservation.capacityReservationGroup.id)), named by "
        "O(reservation.id).",
        "Before anything is created the group and its reservations are looked up: one must be of the VM size, in a "
        "placement's location and zone (a zonal group's reservations take zonal VMs, a regional one's regional "
        "VMs), with enough free instances (its capacity less the VMs associated). Placements it does not fit launch "
        "outside it, after those it fits; a group found full fails over to them like a stockout. Not with O(spot).",
    ), type="dict", scope="instance", suboptions=(
        Option("id", ("The capacity reservation group's resource id, C(/subscriptions/SUB/resourceGroups/RG/...) "
                      "ending in C(.../providers/Microsoft.Compute/capacityReservationGroups/NAME).",)),)),
    Option("self_stop_deallocate", (
        "With O(self_stop) (C(gpu_cluster_ttl) / C(gpu_cluster_idle_minutes)) - how a node stops itself. Unset or "
        "C(true): each VM gets a system-assigned managed identity and a role assignment on itself "
        "(O(self_stop_role)), and the lifetime timer deallocates it through Resource Manager (a token from the "
        "instance metadata service, C(POST .../virtualMachines/NAME/deallocate)): no more compute is billed, the "
        "VM and its OS disk stay until teardown, which removes the role assignment too. Assigning the role needs "
        "C(Microsoft.Authorization/roleAssignments/write) on the resource group (Owner, User Access Administrator, "
        "Role Based Access Control Administrator); without it the module stops before creating anything, naming "
        "the permission.",
        "C(false): no identity; the node powers off from inside, and Azure keeps the VM allocated - billed - until "
        "teardown.",
    ), type="bool", scope="instance"),
    Option("self_stop_role", (
        "The role the VM's identity gets on the VM itself for O(self_stop_deallocate): a role definition GUID or "
        "its resource id. Default Virtual Machine Contributor (C(9980e02c-c2be-4d73-94e8-173b1dc7cf3c)), which lets "
        "any process on the node manage this VM (not others). Name a custom role whose only actions are "
        "C(Microsoft.Compute/virtualMachines/read) and C(Microsoft.Compute/virtualMachines/deallocate/action) to "
        "narrow it.",
    ), scope="instance"),
    Option("root_volume_size", ("OS disk size in GiB (default the image's). Deleted with the node.",),
           type="int", scope="instance"),
    Option("public_ip", ("A Standard static public IP per node (deleted with the node); unset means yes. Set C(false) "
                         "for a controller inside the network (a bastion, VPN, peered VNet); the nodes are then "
                         "reached at their private addresses and nothing reaches them from the internet.",),
           type="bool", scope="instance"),
    Option("subnet_id", ("Bring your own network - the resource id of a subnet for the nodes (in the nodes' location). "
                         "Unset, the cluster gets a VNet of its own per location with the firewall's NSG on its "
                         "subnet.",), scope="instance"),
))
