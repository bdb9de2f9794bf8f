"""The azure cloud's pure parts: request shapes, answers, NSG rules, error classification, the credential chain."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from conftest import ROOT

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.errors import classify, quota_details
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import (
    AzureProvider, credential_settings)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import NodeSpec, RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, ConfigError, NotFoundError, QuotaError, TransientError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from arm_double import check_body  # noqa: E402  (the double's checker against the SDK's models)

import azure.mgmt.compute.models as compute_models  # noqa: E402
import azure.mgmt.network.models as network_models  # noqa: E402

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEFf7sXW0g0Sb9m3Y1b0cV2l8bP6fX3c2x8p7mE0s1aB test"


# -- request bodies are what the SDK's own models accept --------------------------------------------------------
def test_every_body_the_collection_sends_passes_the_sdk_model_check():
    tags = {"aiinfra-gpu-cluster": "c"}
    sub = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/nodes"
    bodies = [
        (shapes.vm_body("eastus", tags, "Standard_ND96isr_H100_v5", shapes.parse_image("a:b:c:latest"), "c-0",
                        "gpuadmin", KEY, "/nic", avset_id="/avset", root_volume_size=256, spot=True),
         compute_models.VirtualMachine),
        (shapes.vm_body("eastus", tags, "Standard_NC4as_T4_v3", {"id": "/img"}, "c-0", "gpuadmin", KEY, "/nic",
                        zone="2", ppg_id="/ppg"), compute_models.VirtualMachine),
        (shapes.avset_body("eastus", tags, "/ppg"), compute_models.AvailabilitySet),
        (shapes.ppg_body("eastus", tags, zone="1"), compute_models.ProximityPlacementGroup),
        (shapes.public_ip_body("eastus", tags, zone="1"), network_models.PublicIPAddress),
        (shapes.nic_body("eastus", tags, sub, "/pip", "/nsg", accelerated=True, asg_id=ASG),
         network_models.NetworkInterface),
        (shapes.asg_body("eastus", tags), network_models.ApplicationSecurityGroup),
        (shapes.vnet_body("eastus", tags, "/nsg"), network_models.VirtualNetwork),
        ({"location": "eastus", "tags": tags, "properties": {"securityRules": shapes.nsg_rules(
            desired_rules(["198.51.100.0/24"]), ASG)}}, network_models.NetworkSecurityGroup),
    ]
    for body, model in bodies:
        assert check_body(body, model) == [], (model.__name__, check_body(body, model))


ASG = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/applicationSecurityGroups/c-asg-eastus"


def test_the_model_check_finds_unknown_members_wrong_types_bad_enums_and_missing_required():
    body = shapes.vm_body("eastus", {}, "Standard_D2s_v3", {"id": "/img"}, "c-0", "u", KEY, "/nic")
    body["properties"]["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] = "yes"
    body["properties"]["storageProfile"]["osDisk"]["deleteOption"] = "Remove"
    body["properties"]["hardwareProfile"]["gpus"] = 8
    del body["location"]
    problems = " | ".join(check_body(body, compute_models.VirtualMachine))
    assert "Could not find member 'gpus'" in problems
    assert "'Boolean'" in problems
    assert "'Remove' is not valid for 'DiskDeleteOptionTypes'" in problems
    assert "Required property 'location'" in problems


# -- shapes -----------------------------------------------------------------------------------------------------
def test_vm_body_is_key_only_with_everything_deleted_with_the_vm():
    body = shapes.vm_body("eastus", {}, "S", {"publisher": "p"}, "c-0", "gpuadmin", KEY, "/nic", avset_id="/a")
    props = body["properties"]
    linux = props["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"] == [{"path": "/home/gpuadmin/.ssh/authorized_keys", "keyData": KEY}]
    assert props["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert props["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] == "Delete"
    assert "zones" not in body and props["availabilitySet"] == {"id": "/a"}
    assert shapes.public_ip_body("eastus", {})["properties"]["deleteOption"] == "Delete"
    assert shapes.public_ip_body("eastus", {})["sku"]["name"] == "Standard"


@pytest.mark.parametrize("image,expected", [
    ("microsoft-dsvm:ubuntu-hpc:2204:latest", {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204",
                                               "version": "latest"}),
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i",
     {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i"}),
])
def test_parse_image(image, expected):
    assert shapes.parse_image(image) == expected


@pytest.mark.parametrize("image", ["ubuntu", "a:b:c", "a::c:d", ""])
def test_parse_image_refuses_what_is_neither_urn_nor_id(image):
    with pytest.raises(ConfigError, match="neither a marketplace URN nor an image id"):
        shapes.parse_image(image)


def test_plan_locations_orders_dedupes_and_keeps_a_cluster_where_it_is():
    tries = shapes.plan_locations([{"location": "East US"}, {"location": "westus2", "zone": 2},
                                   {"location": "eastus"}], None)
    assert tries == [{"location": "eastus", "zone": None}, {"location": "westus2", "zone": "2"}]
    assert shapes.plan_locations(None, "westus2") == [{"location": "westus2", "zone": None}]
    assert shapes.plan_locations([{"location": "eastus"}, {"location": "westus2"}], None, "westus2") == \
        [{"location": "westus2", "zone": None}]
    with pytest.raises(ConfigError, match="nodes are in southcentralus but no placement is"):
        shapes.plan_locations([{"location": "eastus"}], None, "southcentralus")
    with pytest.raises(ConfigError, match="no location"):
        shapes.plan_locations(None, None)
    with pytest.raises(ConfigError, match="zone '7'"):
        shapes.plan_locations([{"location": "eastus", "zone": "7"}], None)


def test_sku_problem_reads_offers_and_restrictions():
    skus = [{"resourceType": "virtualMachines", "name": "Standard_ND96isr_H100_v5", "locations": ["eastus"],
             "locationInfo": [{"location": "eastus", "zones": ["1", "2"]}], "restrictions": []},
            {"resourceType": "virtualMachines", "name": "Standard_NC4as_T4_v3", "locations": ["eastus"],
             "restrictions": [{"type": "Location", "values": ["eastus"], "reasonCode": "NotAvailableForSubscription"}]}]
    assert shapes.sku_problem(skus, "Standard_ND96isr_H100_v5", "eastus") is None
    assert "not offered in zone 3" in shapes.sku_problem(skus, "Standard_ND96isr_H100_v5", "eastus", "3")
    assert "NotAvailableForSubscription" in shapes.sku_problem(skus, "Standard_NC4as_T4_v3", "eastus")
    assert "not offered in eastus" in shapes.sku_problem(skus, "Standard_X", "eastus")


def test_node_from_vm_reads_rank_addresses_state_and_labels():
    vm = {"id": "/vm", "name": "c-3", "location": "eastus", "zones": ["2"],
          "tags": {"aiinfra-gpu-cluster": "c", "aiinfra-gpu-rank": "3", "aiinfra-gpu-ssh-user": "gpuadmin", "team": "x"},
          "properties": {"provisioningState": "Succeeded", "hardwareProfile": {"vmSize": "S"},
                         "instanceView": {"statuses": [{"code": "PowerState/deallocated"}]},
                         "networkProfile": {"networkInterfaces": [{"id": "/NIC"}]}}}
    nics = {"/nic": {"properties": {"ipConfigurations": [{"properties": {"privateIPAddress": "10.42.0.9",
                                                                         "publicIPAddress": {"id": "/pip"}}}]}}}
    pips = {"/pip": {"properties": {"ipAddress": "20.1.2.3"}}}
    node = shapes.node_from_vm(vm, "c", nics, pips)
    assert (node.rank, node.name, node.state, node.zone) == (3, "c-3", "stopped", "eastus-2")
    assert (node.private_address, node.ssh_host, node.ssh_user) == ("10.42.0.9", "20.1.2.3", "gpuadmin")
    assert node.labels == {"team": "x"}
    assert shapes.vm_state({"properties": {"provisioningState": "Failed"}}) == "failed"
    assert shapes.vm_state({"properties": {"provisioningState": "Creating"}}) == "pending"


def test_nsg_rules_are_deterministic_and_read_back_as_the_same_rules():
    rules = desired_rules(["198.51.100.0/24", "2001:db8::/48"])
    wire = shapes.nsg_rules(rules, ASG)
    assert wire == shapes.nsg_rules(rules, ASG)
    priorities = [(r["properties"]["direction"], r["properties"]["priority"]) for r in wire]
    assert len(set(priorities)) == len(priorities)
    # after the allows: the internet, then the rest of the virtual network (Azure's AllowVnetInBound), denied
    denies = [(r["properties"]["access"], r["properties"]["sourceAddressPrefix"], r["properties"]["direction"])
              for r in wire[-2:]]
    assert denies == [("Deny", "Internet", "Inbound"), ("Deny", "VirtualNetwork", "Inbound")]
    assert max(r["properties"]["priority"] for r in wire[:-2]) < wire[-2]["properties"]["priority"]
    back = shapes.rules_from_nsg({"properties": {"securityRules": wire}})
    assert back == rules
    ssh = [r for r in wire if r["properties"]["destinationPortRange"] == "22"]
    assert [r["properties"]["sourceAddressPrefix"] for r in ssh] == ["198.51.100.0/24", "2001:db8::/48"]
    assert shapes.same_rules({"properties": {"securityRules": wire}}, wire)
    assert not shapes.same_rules({"properties": {"securityRules": wire[1:]}}, wire)
    assert RuleSpec("ingress", "all", -1, -1, "self") in back
    # the cluster's own traffic: from the group's members to its members, no address range at all
    (own,) = [r["properties"] for r in wire if r["properties"].get("sourceApplicationSecurityGroups")
              and r["properties"]["direction"] == "Inbound"]
    assert own["sourceApplicationSecurityGroups"] == own["destinationApplicationSecurityGroups"] == [{"id": ASG}]
    assert "sourceAddressPrefix" not in own and "destinationAddressPrefix" not in own
    # ARM may answer the group's id in another case: no difference
    upper = shapes.with_asg(wire, ASG.upper())
    assert shapes.same_rules({"properties": {"securityRules": upper}}, wire)
    assert not shapes.same_rules({"properties": {"securityRules": shapes.with_asg(wire, ASG + "2")}}, wire)
    # an NSG of before the group (self was the subnet's prefix) reads back as the same rules: re-run converts it
    old = [dict(r, properties=dict(r["properties"], sourceAddressPrefix=shapes.SUBNET_PREFIX,
                                   destinationAddressPrefix="*"))
           for r in wire if r["properties"].get("sourceApplicationSecurityGroups")
           and r["properties"]["direction"] == "Inbound"]
    for r in old:
        r["properties"].pop("sourceApplicationSecurityGroups")
        r["properties"].pop("destinationApplicationSecurityGroups")
    back = shapes.rules_from_nsg({"properties": {"securityRules": old}})
    assert back == [RuleSpec("ingress", "all", -1, -1, "self")]


# -- errors -----------------------------------------------------------------------------------------------------
class _Error(object):
    def __init__(self, code, message):
        self.code, self.message = code, message


class _Response(object):
    def __init__(self, status, headers=None):
        self.status_code, self.headers = status, headers or {}


class HttpResponseError(Exception):
    def __init__(self, status, code, message, headers=None):
        super(HttpResponseError, self).__init__(message)
        self.status_code = status
        self.error = _Error(code, message)
        self.response = _Response(status, headers)


class ClientAuthenticationError(HttpResponseError):
    pass


QUOTA_MESSAGE = ("Operation could not be completed as it results in exceeding approved standardNDSH100v5Family Cores "
                 "quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: "
                 "192, Current Usage: 96, Additional Required: 192, (Minimum) New Limit Required: 288.")


def test_classify_capacity_quota_throttling_permission_and_not_found():
    for code in ("AllocationFailed", "ZonalAllocationFailed", "SkuNotAvailable", "OverconstrainedAllocationRequest"):
        assert isinstance(classify(HttpResponseError(409, code, "no")), CapacityError)
    quota = classify(HttpResponseError(409, "OperationNotAllowed", QUOTA_MESSAGE))
    assert isinstance(quota, QuotaError)
    assert "standardNDSH100v5Family" in quota.message and "limit 192" in quota.message
    assert "at least 288" in quota.hint
    assert quota_details(QUOTA_MESSAGE)["required"] == 192
    assert isinstance(classify(HttpResponseError(409, "QuotaExceeded", "x")), QuotaError)
    throttled = classify(HttpResponseError(429, "TooManyRequests", "slow down", {"Retry-After": "7"}))
    assert isinstance(throttled, TransientError) and throttled.retry_after == 7.0
    denied = classify(HttpResponseError(403, "AuthorizationFailed", "The client 'x' with object id 'y' does not have "
                                        "authorization to perform action 'Microsoft.Compute/virtualMachines/write' "
                                        "over scope '/subscriptions/s' or the scope is invalid."))
    assert isinstance(denied, ConfigError) and "Microsoft.Compute/virtualMachines/write" in denied.message
    assert isinstance(classify(HttpResponseError(404, "ResourceGroupNotFound", "gone")), NotFoundError)
    assert isinstance(classify(HttpResponseError(503, "ServiceUnavailable", "busy")), TransientError)
    assert classify(ValueError("not azure")) is None


def test_rejected_credentials_name_where_they_came_from_never_the_secret():
    err = classify(ClientAuthenticationError(401, None, "AADSTS7000215: Invalid client secret provided."),
                   {"credential": "service principal from AZURE_TENANT, AZURE_CLIENT_ID, AZURE_SECRET"})
    assert isinstance(err, ConfigError)
    assert "AZURE_TENANT, AZURE_CLIENT_ID, AZURE_SECRET" in err.message


# -- credentials ------------------------------------------------------------------------------------------------
def test_credentials_from_awx_or_azure_identity_names_or_options():
    awx = credential_settings({}, {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_TENANT": "t", "AZURE_CLIENT_ID": "c",
                                   "AZURE_SECRET": "x"})
    assert (awx["kind"], awx["tenant"], awx["secret"]) == ("service_principal", "t", "x")
    assert awx["read"] == ["AZURE_TENANT", "AZURE_CLIENT_ID", "AZURE_SECRET"]
    ident = credential_settings({}, {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_TENANT_ID": "t2", "AZURE_TENANT": "t",
                                     "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "y"})
    assert (ident["tenant"], ident["secret"]) == ("t2", "y")
    opts = credential_settings({"subscription_id": "s", "tenant": "t3", "client_id": "c3", "secret": "z",
                                "authority_host": "https://login.microsoftonline.us"}, {"AZURE_CLIENT_SECRET": "y"})
    assert (opts["tenant"], opts["secret"], opts["authority"]) == ("t3", "z", "https://login.microsoftonline.us")
    assert credential_settings({}, {"AZURE_SUBSCRIPTION_ID": "s"})["kind"] == "default"
    with pytest.raises(ConfigError, match="no Azure subscription"):
        credential_settings({}, {"AZURE_CLIENT_SECRET": "y"})
    with pytest.raises(ConfigError, match="not its tenant"):
        credential_settings({}, {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_CLIENT_ID": "c", "AZURE_SECRET": "y"})


def test_preflight_is_offline_and_refuses_bad_options():
    provider = AzureProvider({"location": "eastus"}, clients=object())
    spec = NodeSpec(cluster="c", ssh_public_key=KEY, instance_type="Standard_ND96isr_H100_v5",
                    image="microsoft-dsvm:ubuntu-hpc:2204:latest")
    provider.preflight(spec)
    for opts, match in (({"location": "East US!"}, "not an Azure location"),
                        ({"location": "eastus", "subnet_id": "subnet-1"}, "not a subnet resource id"),
                        ({"location": "eastus", "root_volume_size": 8}, "root_volume_size"),
                        ({"location": "eastus", "resource_group": "bad/name"}, "resource group name")):
        with pytest.raises(ConfigError, match=match):
            AzureProvider(opts, clients=object()).preflight(spec)
    with pytest.raises(ConfigError, match="instance_type is required"):
        provider.preflight(NodeSpec(cluster="c", image="a:b:c:d"))


# -- the self-stop: identity, role assignment, the permission check --------------------------------------------------
def test_vm_body_has_a_system_assigned_identity_only_for_the_self_stop():
    args = ("eastus", {}, "Standard_NC4as_T4_v3", {"publisher": "p", "offer": "o", "sku": "s", "version": "1"}, "c-0",
            "gpuadmin", "ssh-ed25519 AAAA", "/nic")
    assert "identity" not in shapes.vm_body(*args)
    assert shapes.vm_body(*args, identity=True)["identity"] == {"type": "SystemAssigned"}


def test_role_assignment_shapes():
    sub = "00000000-0000-4000-8000-00000000a2e0"
    role = shapes.role_definition_id(sub, None)
    assert role == "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (sub, shapes.VM_CONTRIBUTOR)
    assert shapes.role_definition_id(sub, "/providers/Microsoft.Authorization/roleDefinitions/x") == \
        "/providers/Microsoft.Authorization/roleDefinitions/x"
    vm = "/subscriptions/%s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/c-0" % sub
    name = shapes.role_assignment_name(vm, "p-1", role)
    uuid.UUID(name)  # ARM takes only a GUID
    assert name == shapes.role_assignment_name(vm.upper(), "p-1", role) != shapes.role_assignment_name(vm, "p-2", role)
    body = shapes.role_assignment_body(role, "p-1")["properties"]
    assert (body["roleDefinitionId"], body["principalId"], body["principalType"]) == (role, "p-1", "ServicePrincipal")


@pytest.mark.parametrize("permissions, allowed", [
    ([{"actions": ["*"], "notActions": []}], True),                                             # Owner
    ([{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]}], False),           # Contributor
    ([{"actions": ["Microsoft.Authorization/roleAssignments/*"], "notActions": []}], True),      # RBAC admin-like
    ([{"actions": ["*/read"], "notActions": []}], False),                                        # Reader
    ([{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]},
      {"actions": ["Microsoft.Authorization/roleAssignments/write"], "notActions": []}], True),   # two roles
    ([], False),
])
def test_the_permission_to_assign_roles_from_the_permissions_read(permissions, allowed):
    assert shapes.allows(permissions, shapes.ROLE_ASSIGNMENT_WRITE) is allowed
