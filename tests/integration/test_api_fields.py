"""Every field the collection's code sends to Compute Engine and to Azure Resource Manager, with its documented form,
checked against the schema text - and the code's real requests checked against the table.

For GCP the schema text is the Compute v1 discovery document shipped in google-api-python-client: a field is never
output-only ("Output only." / "[Output Only]"), and a reference is sent in the form its description asks for
("Resource policies (names, not URLs)", "This field only accepts a machine type name", "full or partial URL").
For Azure it is the azure-mgmt-* SDK models: a member is never read-only (``visibility`` without create/update),
and references are resource ids.

The requests come from a scenario run through the providers against the doubles (which log every body); a field
the code sends that is not in the table fails the test, so the table stays complete.
"""

from __future__ import annotations

import re

import pytest

from conftest import KEY, unique_name
from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT, ArmDouble, _describe, _fields, _models
from gce_double import ComputeDouble, discovery_document, output_only, service_account_file

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

PUBKEY = open(KEY + ".pub").read().strip()
NAME, PARTIAL, FULL, ID, VALUE = "name", "partial URL", "full URL", "resource id", "value"
NAME_TEXT = r"names, not URLs|only accepts a [a-z ]+ name|specify only the [a-z ]+ name"
PARTIAL_TEXT = r"(?i)partial (or full )?URL|full or partial URL|projects/[a-z-]+/global/images/"

# method -> {field path: (form, the description text that documents the form, or None where the text is silent)}
GCP_FIELDS = {
    "compute.instances.bulkInsert": {
        "count": (VALUE, None), "minCount": (VALUE, None), "perInstanceProperties.*": (VALUE, None),
        "instanceProperties.machineType": (NAME, NAME_TEXT),
        "instanceProperties.resourcePolicies[]": (NAME, NAME_TEXT),
        "instanceProperties.labels.*": (VALUE, None),
        "instanceProperties.tags.items[]": (VALUE, None),
        "instanceProperties.metadata.items[].key": (VALUE, None),
        "instanceProperties.metadata.items[].value": (VALUE, None),
        "instanceProperties.disks[].boot": (VALUE, None),
        "instanceProperties.disks[].autoDelete": (VALUE, None),
        "instanceProperties.disks[].type": (VALUE, None),
        "instanceProperties.disks[].initializeParams.sourceImage": (PARTIAL, PARTIAL_TEXT),
        "instanceProperties.disks[].initializeParams.labels.*": (VALUE, None),
        "instanceProperties.disks[].initializeParams.diskSizeGb": (VALUE, None),
        "instanceProperties.networkInterfaces[].network": (PARTIAL, PARTIAL_TEXT),
        "instanceProperties.networkInterfaces[].subnetwork": (PARTIAL, PARTIAL_TEXT),
        "instanceProperties.networkInterfaces[].accessConfigs[].type": (VALUE, None),
        "instanceProperties.networkInterfaces[].accessConfigs[].name": (VALUE, None),
        "instanceProperties.scheduling.onHostMaintenance": (VALUE, None),
        "instanceProperties.scheduling.automaticRestart": (VALUE, None),
        "instanceProperties.scheduling.provisioningModel": (VALUE, None),
        "instanceProperties.scheduling.instanceTerminationAction": (VALUE, None),
        "instanceProperties.scheduling.maxRunDuration.seconds": (VALUE, None),
        "instanceProperties.reservationAffinity.consumeReservationType": (VALUE, None),
        "instanceProperties.reservationAffinity.key": (VALUE, None),
        # "This can be either a name to a reservation in the same project or
        # projects/different-project/reservations/some-reservation-name"
        "instanceProperties.reservationAffinity.values[]": (VALUE, None),
        "instanceProperties.guestAccelerators[].acceleratorType": (NAME, NAME_TEXT),
        "instanceProperties.guestAccelerators[].acceleratorCount": (VALUE, None),
    },
    "compute.instances.setLabels": {"labels.*": (VALUE, None), "labelFingerprint": (VALUE, None)},
    "compute.resourcePolicies.insert": {
        "name": (NAME, None), "region": (NAME, None), "description": (VALUE, None),
        "groupPlacementPolicy.collocation": (VALUE, None),
    },
    "compute.firewalls.insert": {
        "name": (NAME, None), "network": (PARTIAL, PARTIAL_TEXT), "direction": (VALUE, None),
        "priority": (VALUE, None), "description": (VALUE, None), "targetTags[]": (VALUE, None),
        "sourceTags[]": (VALUE, None), "sourceRanges[]": (VALUE, None), "allowed[].IPProtocol": (VALUE, None),
        "allowed[].ports[]": (VALUE, None),
    },
    "compute.firewalls.patch": {
        "sourceRanges[]": (VALUE, None), "sourceTags[]": (VALUE, None), "targetTags[]": (VALUE, None),
        "allowed[].IPProtocol": (VALUE, None), "allowed[].ports[]": (VALUE, None),
    },
}

# resource kind (the ARM double's call key) -> {member path: form}
AZURE_FIELDS = {
    "PUT resourceGroups": {"location": VALUE, "tags.*": VALUE},
    "PUT Microsoft.Network/networkSecurityGroups": {
        "location": VALUE, "tags.*": VALUE, "properties.securityRules[].name": NAME,
        "properties.securityRules[].properties.protocol": VALUE,
        "properties.securityRules[].properties.access": VALUE,
        "properties.securityRules[].properties.direction": VALUE,
        "properties.securityRules[].properties.priority": VALUE,
        "properties.securityRules[].properties.sourcePortRange": VALUE,
        "properties.securityRules[].properties.destinationPortRange": VALUE,
        "properties.securityRules[].properties.sourceAddressPrefix": VALUE,
        "properties.securityRules[].properties.destinationAddressPrefix": VALUE,
        "properties.securityRules[].properties.description": VALUE,
        "properties.securityRules[].properties.sourceApplicationSecurityGroups[].id": ID,
        "properties.securityRules[].properties.destinationApplicationSecurityGroups[].id": ID,
    },
    "PUT Microsoft.Network/applicationSecurityGroups": {"location": VALUE, "tags.*": VALUE},
    "PUT Microsoft.Network/virtualNetworks": {
        "location": VALUE, "tags.*": VALUE, "properties.addressSpace.addressPrefixes[]": VALUE,
        "properties.subnets[].name": NAME, "properties.subnets[].properties.addressPrefix": VALUE,
        "properties.subnets[].properties.networkSecurityGroup.id": ID,
    },
    "PUT Microsoft.Compute/proximityPlacementGroups": {
        "location": VALUE, "tags.*": VALUE, "properties.proximityPlacementGroupType": VALUE, "zones[]": VALUE},
    "PUT Microsoft.Compute/availabilitySets": {
        "location": VALUE, "tags.*": VALUE, "sku.name": VALUE, "properties.platformFaultDomainCount": VALUE,
        "properties.platformUpdateDomainCount": VALUE, "properties.proximityPlacementGroup.id": ID},
    "PUT Microsoft.Network/publicIPAddresses": {
        "location": VALUE, "tags.*": VALUE, "sku.name": VALUE, "sku.tier": VALUE, "zones[]": VALUE,
        "properties.publicIPAllocationMethod": VALUE, "properties.publicIPAddressVersion": VALUE,
        "properties.deleteOption": VALUE},
    "PUT Microsoft.Network/networkInterfaces": {
        "location": VALUE, "tags.*": VALUE, "properties.enableAcceleratedNetworking": VALUE,
        "properties.networkSecurityGroup.id": ID, "properties.ipConfigurations[].name": NAME,
        "properties.ipConfigurations[].properties.subnet.id": ID,
        "properties.ipConfigurations[].properties.privateIPAllocationMethod": VALUE,
        "properties.ipConfigurations[].properties.primary": VALUE,
        "properties.ipConfigurations[].properties.publicIPAddress.id": ID,
        "properties.ipConfigurations[].properties.applicationSecurityGroups[].id": ID},
    "PUT Microsoft.Compute/virtualMachines": {
        "location": VALUE, "tags.*": VALUE, "zones[]": VALUE, "properties.hardwareProfile.vmSize": VALUE,
        "properties.storageProfile.imageReference.publisher": VALUE,
        "properties.storageProfile.imageReference.offer": VALUE,
        "properties.storageProfile.imageReference.sku": VALUE,
        "properties.storageProfile.imageReference.version": VALUE,
        "properties.storageProfile.imageReference.id": ID,
        "properties.storageProfile.osDisk.createOption": VALUE,
        "properties.storageProfile.osDisk.deleteOption": VALUE,
        "properties.storageProfile.osDisk.caching": VALUE,
        "properties.storageProfile.osDisk.diskSizeGB": VALUE,
        "properties.storageProfile.osDisk.managedDisk.storageAccountType": VALUE,
        "properties.osProfile.computerName": NAME, "properties.osProfile.adminUsername": VALUE,
        "properties.osProfile.linuxConfiguration.disablePasswordAuthentication": VALUE,
        "properties.osProfile.linuxConfiguration.ssh.publicKeys[].path": VALUE,
        "properties.osProfile.linuxConfiguration.ssh.publicKeys[].keyData": VALUE,
        "properties.networkProfile.networkInterfaces[].id": ID,
        "properties.networkProfile.networkInterfaces[].properties.primary": VALUE,
        "properties.networkProfile.networkInterfaces[].properties.deleteOption": VALUE,
        "properties.availabilitySet.id": ID, "properties.proximityPlacementGroup.id": ID,
        "properties.priority": VALUE, "properties.evictionPolicy": VALUE, "properties.billingProfile.maxPrice": VALUE,
        "properties.capacityReservation.capacityReservationGroup.id": ID,
    },
}
GCP_MAPS = ("labels", "perInstanceProperties")
AZURE_MAPS = ("tags",)


def leaves(value, maps, path=""):
    """(path, value) of every leaf of a request body; list items as ``[]``, entries of the ``maps`` as ``.*``."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = "%s.%s" % (path, key) if path else key
            if key in maps:
                for sub in item.values():
                    yield from leaves(sub, maps, here + ".*") if isinstance(sub, (dict, list)) else [(here + ".*", sub)]
            else:
                yield from leaves(item, maps, here)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, maps, path + "[]")
    else:
        yield path, value


def form_problem(form, value):
    if not isinstance(value, str):
        return None if form == VALUE else "%r is not a string" % (value,)
    if form == NAME and "/" in value:
        return "%r is not a name" % value
    if form == PARTIAL and (value.startswith("http") or "/" not in value):
        return "%r is not a partial URL" % value
    if form == FULL and not value.startswith("https://"):
        return "%r is not a full URL" % value
    if form == ID and not value.lower().startswith("/subscriptions/"):
        return "%r is not a resource id" % value
    return None


# == gcp ==========================================================================================================
def discovery_field(doc, method_id, path):
    """The discovery document's property of ``path`` in the request of ``method_id``."""
    schemas = doc["schemas"]
    method = [m for res in doc["resources"].values() for m in (res.get("methods") or {}).values()
              if m["id"] == method_id][0]
    schema = schemas[method["request"]["$ref"]]
    prop = None
    for part in re.findall(r"[A-Za-z]+|\[\]|\*", path):
        while "$ref" in schema:
            schema = schemas[schema["$ref"]]
        if part == "[]":
            schema = schema["items"]  # the list's own description speaks for its items
        elif part == "*":
            schema = schema["additionalProperties"]
        else:
            prop = schema["properties"][part]
            schema = prop
    return prop


@pytest.mark.parametrize("method_id, path", [(m, p) for m, fields in sorted(GCP_FIELDS.items())
                                             for p in sorted(fields)])
def test_gcp_table_against_the_discovery_document(method_id, path):
    doc = discovery_document()
    prop = discovery_field(doc, method_id, path)
    text = " ".join((prop.get("description") or "").split())
    assert not output_only(prop), "%s %s is output only: %s" % (method_id, path, text)
    form, documented = GCP_FIELDS[method_id][path]
    if documented:
        assert re.search(documented, text), "%s %s: the description does not say %s: %s" % (
            method_id, path, form, text)


@pytest.fixture(scope="module")
def gce_requests(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
    mp.setenv("NO_GCE_CHECK", "True")
    mp.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    double = ComputeDouble()
    sa = service_account_file(str(tmp_path_factory.mktemp("sa") / "sa.json"), double)
    try:
        def prov(**opts):
            options = {"credentials_file": sa, "endpoint_url": double.url, "allow_network_rules": True,
                       "placements": [{"zone": "us-central1-a"}]}
            options.update(opts)
            return GcpProvider(options)
        cluster = unique_name("fld")
        prov().ensure_firewall(cluster, desired_rules(["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/48"]))
        prov().ensure_firewall(cluster, desired_rules(["198.51.100.0/24"]))
        image = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
        compact = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="a3-highgpu-8g", image=image)
        reconcile.ensure_present(prov(root_volume_size=200), compact, 1, wait_timeout=60)
        n1 = base.NodeSpec(cluster=unique_name("fld"), ssh_public_key=PUBKEY, instance_type="n1-standard-8",
                           image=image)
        reconcile.ensure_present(prov(spot=True, subnetwork="default",
                                      accelerators=[{"type": "nvidia-tesla-t4", "count": 1}]), n1, 1, wait_timeout=60)
        double.add_reservation("us-central1-a", "fld-a3", "a3-highgpu-8g", 2)
        reserved = base.NodeSpec(cluster=unique_name("fld"), ssh_public_key=PUBKEY, instance_type="a3-highgpu-8g",
                                 image=image, ttl_minutes=60)
        reconcile.ensure_present(prov(reservation={"id": "fld-a3"}), reserved, 1, wait_timeout=60)
        yield [e for e in double.log if e["body"] is not None and e["id"] in GCP_FIELDS or e["method"] != "GET"]
    finally:
        double.stop()
        mp.undo()


def test_gcp_requests_send_only_the_tables_fields_in_their_forms(gce_requests):
    seen = set()
    for entry in gce_requests:
        if entry["body"] is None or entry["id"].endswith("Operations.wait"):
            continue
        assert entry["id"] in GCP_FIELDS, "a request the table does not list: %s" % entry["id"]
        for path, value in leaves(entry["body"], GCP_MAPS):
            assert path in GCP_FIELDS[entry["id"]], "%s sends %s, which the table does not list" % (entry["id"], path)
            problem = form_problem(GCP_FIELDS[entry["id"]][path][0], value)
            assert problem is None, "%s %s: %s" % (entry["id"], path, problem)
            seen.add((entry["id"], path))
    # the scenario reaches every method of the table
    assert set(m for m, _p in seen) == set(GCP_FIELDS)


# == azure ========================================================================================================
def sdk_member(cls, path):
    """The SDK's rest field of ``path`` in model ``cls``, following models, lists and dicts."""
    kind = ("model", cls)
    rf = None
    for part in re.findall(r"[A-Za-z]+|\[\]|\*", path):
        tag, arg = kind
        if part in ("[]", "*"):
            assert tag in ("list", "dict"), "%s: %s is not a list or map" % (path, part)
            kind = arg
            continue
        assert tag == "model", "%s: %s is not in a model" % (path, part)
        rf = _fields(arg)[part]
        kind = _describe(rf._type)
    return rf


@pytest.mark.parametrize("key, path", [(k, p) for k, fields in sorted(AZURE_FIELDS.items()) for p in sorted(fields)])
def test_azure_table_against_the_sdk_models(key, path):
    kind = key.split(" ", 1)[1].lower()
    cls = _models()[kind]
    rf = sdk_member(cls, path)
    assert rf is not None
    visibility = rf._visibility or ["create"]
    assert set(visibility) & {"create", "update"}, "%s %s is read-only in %s" % (key, path, cls.__name__)


@pytest.fixture(scope="module")
def arm_requests():
    arm = ArmDouble()
    mp = pytest.MonkeyPatch()
    for name, value in arm.env().items():
        mp.setenv(name, value)
    try:
        def prov(**opts):
            options = {"subscription_id": SUBSCRIPTION, "tenant": TENANT, "client_id": CLIENT_ID,
                       "secret": CLIENT_SECRET, "authority_host": arm.url, "endpoint_url": arm.url,
                       "location": "eastus"}
            options.update(opts)
            return AzureProvider(options)
        cluster = unique_name("fld")
        prov().ensure_firewall(cluster, desired_rules(["198.51.100.0/24", "203.0.113.0/24"]))
        prov().ensure_firewall(cluster, desired_rules(["198.51.100.0/24"]))
        spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="Standard_ND96isr_H100_v5",
                             image="microsoft-dsvm:ubuntu-hpc:2204:latest")
        reconcile.ensure_present(prov(root_volume_size=256), spec, 1, wait_timeout=60)
        byo = unique_name("fld")
        subnet = arm.add_network("byo-%s" % byo, "byo", "nodes")
        prov().ensure_firewall(byo, desired_rules(["198.51.100.0/24"]))
        spot = base.NodeSpec(cluster=byo, ssh_public_key=PUBKEY, instance_type="Standard_D2s_v3",
                             image="canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest")
        reconcile.ensure_present(prov(subnet_id=subnet, spot=True, placements=[{"location": "eastus", "zone": "1"}]),
                                 spot, 1, wait_timeout=60)
        crg = arm.add_capacity_reservation_group("crg-%s" % byo, "nd", "eastus",
                                                 [("Standard_ND96isr_H100_v5", [], 2)])
        reserved = base.NodeSpec(cluster=unique_name("fld"), ssh_public_key=PUBKEY,
                                 instance_type="Standard_ND96isr_H100_v5", image="microsoft-dsvm:ubuntu-hpc:2204:latest")
        prov().ensure_firewall(reserved.cluster, desired_rules(["198.51.100.0/24"]))
        reconcile.ensure_present(prov(reservation={"id": crg}), reserved, 1, wait_timeout=60)
        yield list(arm.bodies)
    finally:
        mp.undo()
        arm.stop()


def test_azure_requests_send_only_the_tables_members_in_their_forms(arm_requests):
    seen = set()
    for key, body in arm_requests:
        assert key in AZURE_FIELDS, "a request the table does not list: %s" % key
        for path, value in leaves(body, AZURE_MAPS):
            assert path in AZURE_FIELDS[key], "%s sends %s, which the table does not list" % (key, path)
            problem = form_problem(AZURE_FIELDS[key][path], value)
            assert problem is None, "%s %s: %s" % (key, path, problem)
            seen.add((key, path))
    assert set(k for k, _p in seen) == set(AZURE_FIELDS)
