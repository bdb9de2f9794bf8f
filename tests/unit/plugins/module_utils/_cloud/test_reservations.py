"""Reserved capacity: which placements launch into a reservation (fit_reservation), the offline checks of the
``reservation`` option per cloud, the request bodies' reservation fields, and the classification of a full
reservation as a stockout."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws import errors as aws_errors
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import shapes as az_shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import NodeSpec, fit_reservation
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CapacityError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import errors as gcp_errors
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import shapes as gcp_shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

from botocore.exceptions import ClientError

TRIES = [{"zone": "a"}, {"zone": "b"}, {"zone": "c"}]


def in_zone(zone):
    return lambda t: None if t["zone"] == zone else "%s: not there" % t["zone"]


def test_the_reservations_placements_come_first_and_the_others_follow_outside_it():
    tries, skipped = fit_reservation(TRIES, "r", in_zone("b"), free=4, needed=2, where="x in b")
    assert [(t["zone"], t["reservation"]) for t in tries] == [("b", True), ("a", False), ("c", False)]
    assert skipped == []


def test_a_reservation_that_fits_no_placement_is_an_error_naming_each_misfit():
    with pytest.raises(ConfigError) as err:
        fit_reservation(TRIES, "r", in_zone("z"), free=4, needed=2, where="x in z")
    assert "fits none of the placements" in str(err.value) and "a: not there; b: not there" in str(err.value)


def test_too_few_free_is_an_error_with_nowhere_else_and_a_skip_with_other_placements():
    with pytest.raises(ConfigError) as err:
        fit_reservation([{"zone": "b"}], "r", in_zone("b"), free=1, needed=2, where="x in b")
    assert "r has 1 free instance(s), 2 needed" in str(err.value)
    tries, skipped = fit_reservation(TRIES, "r", in_zone("b"), free=1, needed=2, where="x in b")
    assert [t["zone"] for t in tries] == ["a", "c"] and not any(t["reservation"] for t in tries)
    assert skipped == [{"zone": "b", "reservation": True, "error": "reservation r has 1 free instance(s), 2 needed"}]


def test_exactly_enough_free_is_enough():
    tries, _skipped = fit_reservation(TRIES, "r", in_zone("c"), free=2, needed=2, where="x in c")
    assert tries[0] == {"zone": "c", "reservation": True}


def spec():
    return NodeSpec(cluster="spot-u", ssh_public_key="ssh-ed25519 AAAA u@h", instance_type="p4d.24xlarge",
                    image="ami-0123456789abcdef0")


@pytest.mark.parametrize("reservation, extra, message", [
    ({"id": "cr-12"}, {}, "is not a capacity reservation id"),
    ({"group_arn": "arn:aws:ec2:us-east-1:123456789012:group/x"}, {}, "is not a resource group ARN"),
    ({"id": "cr-0123456789abcdef0", "group_arn": "arn:aws:resource-groups:us-east-1:123456789012:group/x"}, {},
     "needs one of id and group_arn"),
    ({"group_arn": "arn:aws:resource-groups:us-east-1:123456789012:group/x", "capacity_block": True}, {},
     "named by its reservation id"),
    ({"id": "cr-0123456789abcdef0"}, {"spot": True}, "spot instances cannot launch into a capacity reservation"),
])
def test_aws_reservation_option_is_checked_offline(reservation, extra, message):
    opts = dict({"region": "us-east-1", "reservation": reservation}, **extra)
    with pytest.raises(ConfigError) as err:
        AwsProvider(opts, client=object()).preflight(spec())
    assert message in str(err.value)


def test_aws_full_reservation_is_a_capacity_error_so_the_failover_moves_on():
    exc = ClientError({"Error": {"Code": "ReservationCapacityExceeded", "Message": "full"},
                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "RunInstances")
    assert isinstance(aws_errors.classify(exc), CapacityError)


@pytest.mark.parametrize("reservation, extra, message", [
    ({"id": "Not_A_Name"}, {}, "is not a reservation name"),
    ({}, {}, None),
    ({"id": "r1"}, {"spot": True}, "Spot VMs cannot consume a reservation"),
])
def test_gcp_reservation_option_is_checked_offline(reservation, extra, message):
    opts = dict({"project": "my-project-1", "placements": [{"zone": "us-central1-a"}], "reservation": reservation},
                **extra)
    nodes = NodeSpec(cluster="spot-u", instance_type="a3-highgpu-8g",
                     image="projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11")
    prov = GcpProvider.__new__(GcpProvider)
    prov.opts = opts
    if message is None:
        prov.preflight(nodes)
        return
    with pytest.raises(ConfigError) as err:
        prov.preflight(nodes)
    assert message in str(err.value)


def test_gcp_reservation_affinity_and_a_full_reservation_as_a_stockout():
    assert gcp_shapes.reservation_affinity("projects/p-123456/reservations/r1") == {
        "consumeReservationType": "SPECIFIC_RESERVATION", "key": "compute.googleapis.com/reservation-name",
        "values": ["projects/p-123456/reservations/r1"]}
    op = {"error": {"errors": [{"code": "SOME_CODE", "message": "Specified reservations [r1] do not have available "
                                                                "resources for the request."}]}}
    assert isinstance(gcp_errors.classify_operation(op, {"zone": "us-central1-a"}), CapacityError)


def test_azure_vm_body_names_the_capacity_reservation_group():
    gid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/capacityReservationGroups/g"
    body = az_shapes.vm_body("eastus", {}, "Standard_ND96isr_H100_v5", {"publisher": "p"}, "n", "u", "k", "/nic",
                             reservation_group=gid)
    assert body["properties"]["capacityReservation"] == {"capacityReservationGroup": {"id": gid}}
    assert "capacityReservation" not in az_shapes.vm_body("eastus", {}, "S", {}, "n", "u", "k", "/nic")["properties"]


@pytest.mark.parametrize("reservation, extra, message", [
    ({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/hostGroups/g"}, {},
     "is not a capacity reservation group's resource id"),
    ({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/capacityReservationGroups/g"},
     {"spot": True}, "Spot VMs cannot be launched into a capacity reservation group"),
])
def test_azure_reservation_option_is_checked_offline(reservation, extra, message):
    prov = AzureProvider.__new__(AzureProvider)
    prov.opts = dict({"location": "eastus", "reservation": reservation}, **extra)
    nodes = NodeSpec(cluster="spot-u", instance_type="Standard_ND96isr_H100_v5",
                     image="microsoft-dsvm:ubuntu-hpc:2204:latest")
    with pytest.raises(ConfigError) as err:
        prov.preflight(nodes)
    assert message in str(err.value)
