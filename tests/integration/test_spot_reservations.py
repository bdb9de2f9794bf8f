"""Spot and reserved capacity on aws, gcp and azure: the request bodies the clouds' stand-ins see (moto behind the
EC2 proxy, the Compute double, the ARM double), and what those stand-ins refuse as the real APIs do.

Each test drives a provider in-process through reconcile (the instance module's whole behaviour, over HTTP) and reads
the request the stand-in received - never the module's own account of it.
"""

from __future__ import annotations

import os

import boto3
import pytest

from conftest import KEY, unique_name
from arm_double import CLIENT_ID, CLIENT_SECRET, CONTRIBUTOR, SUBSCRIPTION, TENANT, ArmDouble, ArmError
from cloud_servers import gce, moto, proxy  # noqa: F401  pylint: disable=unused-import
from cloud_servers import fresh_arm as arm  # noqa: F401  pylint: disable=unused-import
from gce_double import ApiError, ComputeDouble

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

PUBKEY = open(KEY + ".pub").read().strip() if os.path.exists(KEY + ".pub") else ""
GCE_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
AZ_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
AZ_SIZE = "Standard_ND96isr_H100_v5"
ADMIN = ["198.51.100.0/24"]


def aws(proxy, **opts):
    options = {"region": "us-east-1", "endpoint_url": proxy.url, "access_key": "testing", "secret_key": "testing",
               "placements": [{"availability_zone": "us-east-1a"}, {"availability_zone": "us-east-1b"}],
               "placement_group": False, "efa": False,
               "image_owners": ["099720109477"]}
    options.update(opts)
    return AwsProvider(options)


def aws_present(proxy, cluster, count, instance_type="p4d.24xlarge", replace=(), on_demand=(), **opts):
    prov = aws(proxy, **opts)
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type,
                         image="ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*")
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60, replace=replace, on_demand=on_demand)


def gcp(gce, **opts):
    options = {"credentials_file": gce.sa_file, "endpoint_url": gce.url, "allow_network_rules": True,
               "placements": [{"zone": "us-central1-a"}, {"zone": "us-central1-b"}]}
    options.update(opts)
    return GcpProvider(options)


def gcp_present(gce, cluster, count, instance_type="a3-highgpu-8g", replace=(), on_demand=(), **opts):
    prov = gcp(gce, **opts)
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type, image=GCE_IMAGE)
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60, replace=replace, on_demand=on_demand)


def azure(arm, **opts):
    options = {"subscription_id": SUBSCRIPTION, "tenant": TENANT, "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
               "authority_host": arm.url, "endpoint_url": arm.url, "location": "eastus",
               "placements": [{"location": "eastus"}]}
    options.update(opts)
    return AzureProvider(options)


def azure_present(arm, cluster, count, size=AZ_SIZE, replace=(), on_demand=(), self_stop=False, **opts):
    prov = azure(arm, **opts)
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=size, image=AZ_IMAGE,
                         self_stop=self_stop)
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60, replace=replace, on_demand=on_demand)


def gce_inserts(gce):
    return [m["body"]["instanceProperties"] for m in gce.mutations("compute.instances.bulkInsert")]


def arm_vms(arm):
    return [body for key, body in arm.bodies if key.endswith("virtualMachines")]


# -- spot ------------------------------------------------------------------------------------------------------------
def test_aws_spot_request_is_a_one_time_spot_market_request_terminated_on_interruption(proxy):
    aws_present(proxy, unique_name("spot"), 2, spot=True)
    run = proxy.requests[-1]
    assert run["InstanceMarketOptions.MarketType"] == "spot"
    assert run["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "one-time"
    assert run["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "terminate"
    kinds = [v for k, v in run.items() if k.startswith("TagSpecification.") and k.endswith(".ResourceType")]
    assert "spot-instances-request" in kinds


def test_gcp_spot_request_is_spot_deleted_on_preemption_and_the_double_accepts_it(gce):
    gcp_present(gce, unique_name("spot"), 2, spot=True)
    scheduling = gce_inserts(gce)[-1]["scheduling"]
    assert scheduling == {"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE",
                          "automaticRestart": False, "onHostMaintenance": "TERMINATE"}


@pytest.mark.parametrize("scheduling, message", [
    ({"provisioningModel": "SPOT", "automaticRestart": True, "onHostMaintenance": "TERMINATE"},
     "automaticRestart be false when provisioningModel is SPOT"),
    ({"provisioningModel": "SPOT", "onHostMaintenance": "MIGRATE"}, "Spot VMs cannot live-migrate"),
    ({"instanceTerminationAction": "DELETE"}, "only for Spot VMs or VMs with maxRunDuration"),
    ({"maxRunDuration": {"seconds": "3600"}}, "need an instanceTerminationAction"),
    ({"maxRunDuration": {"seconds": "10"}, "instanceTerminationAction": "DELETE"}, "between 30 seconds and 120 days"),
])
def test_the_compute_double_refuses_what_gce_refuses_in_scheduling(scheduling, message):
    with pytest.raises(ApiError) as err:
        ComputeDouble._check_scheduling(scheduling)  # pylint: disable=protected-access
    assert err.value.status == 400 and message in err.value.message


def test_azure_spot_request_is_spot_deleted_on_eviction_up_to_the_on_demand_price(arm):
    azure_present(arm, unique_name("spot"), 1, spot=True)
    props = arm_vms(arm)[-1]["properties"]
    assert (props["priority"], props["evictionPolicy"], props["billingProfile"]) == ("Spot", "Delete", {"maxPrice": -1})


@pytest.mark.parametrize("props, code", [
    ({"evictionPolicy": "Delete"}, "InvalidParameter"),
    ({"billingProfile": {"maxPrice": -1}}, "InvalidParameter"),
    ({"priority": "Spot", "evictionPolicy": "Stop"}, "InvalidParameter"),
    ({"priority": "Spot", "billingProfile": {"maxPrice": 0}}, "InvalidMaxPrice"),
    ({"priority": "Spot", "billingProfile": {"maxPrice": 0.123456}}, "InvalidMaxPrice"),
])
def test_the_arm_double_refuses_what_arm_refuses_for_spot(props, code):
    with pytest.raises(ArmError) as err:
        ArmDouble._check_priority(props)  # pylint: disable=protected-access
    assert err.value.code == code


# -- the spot fallback: a replaced rank launched on-demand (the instance module's on_demand) -------------------------
def markets(result):
    return dict((n["rank"], n["market"]) for n in result["nodes"])


def test_aws_replacement_on_demand_has_no_spot_market_and_the_others_stay_spot(proxy):
    cluster = unique_name("spot")
    aws_present(proxy, cluster, 2, spot=True)
    before = len(run_requests(proxy))
    result = aws_present(proxy, cluster, 2, spot=True, replace=[1], on_demand=[1])
    run = run_requests(proxy)[before:]
    assert len(run) == 1 and run[0]["MinCount"] == run[0]["MaxCount"] == "1"
    assert not [k for k in run[0] if k.startswith("InstanceMarketOptions")]
    kinds = [v for k, v in run[0].items() if k.startswith("TagSpecification.") and k.endswith(".ResourceType")]
    assert "spot-instances-request" not in kinds
    # what EC2 says of each node (InstanceLifecycle), through moto
    assert markets(result) == {0: "spot", 1: "on_demand"}


def test_gcp_replacement_on_demand_has_no_spot_scheduling(gce):
    cluster = unique_name("spot")
    gcp_present(gce, cluster, 2, spot=True)
    result = gcp_present(gce, cluster, 2, spot=True, replace=[0], on_demand=[0])
    last = gce_inserts(gce)[-1]
    assert (last.get("scheduling") or {}).get("provisioningModel") != "SPOT"
    assert "instanceTerminationAction" not in (last.get("scheduling") or {})
    assert markets(result) == {0: "on_demand", 1: "spot"}


# the ARM double's operations take a minute together: marker spot (make test-spot), not the default run
@pytest.mark.spot
def test_azure_replacement_on_demand_is_a_regular_priority_vm(arm):
    cluster = unique_name("spot")
    azure_present(arm, cluster, 2, spot=True)
    result = azure_present(arm, cluster, 2, spot=True, replace=[1], on_demand=[1])
    props = arm_vms(arm)[-1]["properties"]
    assert props.get("priority") in (None, "Regular") and "evictionPolicy" not in props
    assert "billingProfile" not in props
    assert markets(result) == {0: "spot", 1: "on_demand"}


# -- reservations: aws -----------------------------------------------------------------------------------------------
def run_requests(proxy):
    return [r for r in proxy.requests if r.get("Action") == "RunInstances"]


def test_aws_launch_into_a_capacity_reservation_targets_it_first_and_takes_its_instances(proxy):
    rid = proxy.add_capacity_reservation("p4d.24xlarge", "us-east-1b", 4)
    result = aws_present(proxy, unique_name("spot"), 2, reservation={"id": rid})
    run = run_requests(proxy)
    # the reservation's placement first, though us-east-1a is listed before it
    assert [r["Placement.AvailabilityZone"] for r in run] == ["us-east-1b"]
    assert run[0]["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"] == rid
    assert "InstanceMarketOptions.MarketType" not in run[0]
    assert proxy.capacity_reservations[rid]["AvailableInstanceCount"] == 2
    assert result["cluster"]["landed"]["availability_zone"] == "us-east-1b"


def test_aws_capacity_block_is_launched_with_the_capacity_block_market(proxy):
    rid = proxy.add_capacity_reservation("p5.48xlarge", "us-east-1a", 2, kind="capacity-block")
    aws_present(proxy, unique_name("spot"), 2, instance_type="p5.48xlarge", reservation={"id": rid},
                placements=[{"availability_zone": "us-east-1a"}])
    run = run_requests(proxy)[-1]
    assert run["InstanceMarketOptions.MarketType"] == "capacity-block"
    assert run["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"] == rid


def test_aws_reservation_group_is_targeted_by_its_arn(proxy):
    arn = "arn:aws:resource-groups:us-east-1:123456789012:group/my-p4d"
    aws_present(proxy, unique_name("spot"), 1, reservation={"group_arn": arn})
    run = run_requests(proxy)[-1]
    assert run["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationResourceGroupArn"] == arn


@pytest.mark.parametrize("case, reservation, placements, count, message", [
    ("wrong type", ("g6e.xlarge", "us-east-1a", 4), None, 2, "fits none of the placements"),
    ("wrong zone", ("p4d.24xlarge", "us-east-1c", 4), None, 2, "the reservation is in us-east-1c"),
    ("too few", ("p4d.24xlarge", "us-east-1a", 1), [{"availability_zone": "us-east-1a"}], 2,
     "has 1 free instance(s), 2 needed"),
    ("not active", ("p4d.24xlarge", "us-east-1a", 4, None, "default", "expired"), None, 2, "is expired, not active"),
    ("unknown", None, None, 2, "does not exist"),
])
def test_aws_reservation_that_does_not_fit_is_an_error_before_anything_is_created(
        proxy, case, reservation, placements, count, message):
    rid = proxy.add_capacity_reservation(*reservation) if reservation else "cr-0123456789abcdef0"
    opts = {"reservation": {"id": rid}}
    if placements:
        opts["placements"] = placements
    with pytest.raises(ConfigError) as err:
        aws_present(proxy, unique_name("spot"), count, **opts)
    assert message in str(err.value), case
    assert run_requests(proxy) == []


def test_aws_full_reservation_fails_over_like_a_stockout(proxy):
    rid = proxy.add_capacity_reservation("p4d.24xlarge", "us-east-1a", 4)
    proxy.capacity_reservations[rid].update(AvailableInstanceCount=0, reported=4)  # taken since the look-up
    result = aws_present(proxy, unique_name("spot"), 2, reservation={"id": rid})
    run = run_requests(proxy)
    assert [(r["Placement.AvailabilityZone"],
             r.get("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId")) for r in run] \
        == [("us-east-1a", rid), ("us-east-1b", None)]
    assert result["cluster"]["failover"][0]["availability_zone"] == "us-east-1a"
    assert "ReservationCapacityExceeded" in result["cluster"]["failover"][0]["error"]


def test_aws_too_small_reservation_with_other_placements_is_skipped_like_a_stockout(proxy):
    rid = proxy.add_capacity_reservation("p4d.24xlarge", "us-east-1a", 1)
    aws_present(proxy, unique_name("spot"), 2, reservation={"id": rid})
    run = run_requests(proxy)
    assert [r["Placement.AvailabilityZone"] for r in run] == ["us-east-1b"]
    assert "CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId" not in run[0]


# -- reservations: gcp -----------------------------------------------------------------------------------------------
def test_gcp_launch_into_a_specific_reservation_names_it_and_its_zone_goes_first(gce):
    gce.add_reservation("us-central1-b", "a3-res", "a3-highgpu-8g", 4)
    result = gcp_present(gce, unique_name("spot"), 2, reservation={"id": "a3-res"})
    inserts = gce.mutations("compute.instances.bulkInsert")
    assert [m["path"].split("/zones/")[1].split("/")[0] for m in inserts] == ["us-central1-b"]
    assert inserts[0]["body"]["instanceProperties"]["reservationAffinity"] == {
        "consumeReservationType": "SPECIFIC_RESERVATION", "key": "compute.googleapis.com/reservation-name",
        "values": ["a3-res"]}
    assert gce.reservations[("us-central1-b", "a3-res")]["specificReservation"]["inUseCount"] == "2"
    assert result["cluster"]["landed"]["reservation"] == "a3-res"


@pytest.mark.parametrize("case, reservation, placements, count, message", [
    ("wrong type", ("us-central1-a", "r1", "a2-highgpu-1g", 4), None, 2, "the reservation is for a2-highgpu-1g"),
    ("wrong zone", ("us-central1-c", "r1", "a3-highgpu-8g", 4), None, 2, "does not exist in any placement's zone"),
    ("too few", ("us-central1-a", "r1", "a3-highgpu-8g", 3, 2), [{"zone": "us-central1-a"}], 2,
     "has 1 free instance(s), 2 needed"),
])
def test_gcp_reservation_that_does_not_fit_is_an_error_before_anything_is_created(
        gce, case, reservation, placements, count, message):
    gce.add_reservation(*reservation)
    opts = {"reservation": {"id": "r1"}}
    if placements:
        opts["placements"] = placements
    with pytest.raises(ConfigError) as err:
        gcp_present(gce, unique_name("spot"), count, **opts)
    assert message in str(err.value), case
    assert gce.mutations("compute.instances.bulkInsert") == []


def test_gcp_full_reservation_fails_over_like_a_stockout(gce):
    gce.add_reservation("us-central1-a", "r1", "a3-highgpu-8g", 4)
    looked_up = gce.do_reservations_get

    def taken_since(params, query, body):  # someone takes the reservation after the look-up
        answer = looked_up(params, query, body)
        gce.reservations[("us-central1-a", "r1")]["specificReservation"]["inUseCount"] = "4"
        return answer
    gce.do_reservations_get = taken_since
    result = gcp_present(gce, unique_name("spot"), 2, reservation={"id": "r1"})
    inserts = [m["body"]["instanceProperties"] for m in gce.mutations("compute.instances.bulkInsert")]
    assert [p.get("reservationAffinity", {}).get("values") for p in inserts] == [["r1"], None]
    assert result["cluster"]["landed"]["zone"] == "us-central1-b"
    assert "do not have available resources" in result["cluster"]["failover"][0]["error"]


# -- reservations: azure ---------------------------------------------------------------------------------------------
def test_azure_launch_into_a_capacity_reservation_group_names_it_on_each_vm(arm):
    gid = arm.add_capacity_reservation_group("crg-rg", "nd-h100", "eastus", [(AZ_SIZE, [], 4)])
    result = azure_present(arm, unique_name("spot"), 2, reservation={"id": gid})
    vms = arm_vms(arm)
    assert len(vms) == 2
    assert all(v["properties"]["capacityReservation"] == {"capacityReservationGroup": {"id": gid}} for v in vms)
    held = arm.resources[(gid + "/capacityReservations/r0").lower()]["properties"]["virtualMachinesAssociated"]
    assert len(held) == 2
    assert result["cluster"]["landed"]["reservation"] is True


@pytest.mark.parametrize("case, group, placements, count, message", [
    ("wrong type", ("eastus", [("Standard_NC24ads_A100_v4", [], 4)]), None, 2,
     "the group reserves Standard_NC24ads_A100_v4"),
    ("wrong zone", ("eastus", [(AZ_SIZE, ["2"], 4)]), [{"location": "eastus", "zone": "1"}], 2,
     "reservations are in zone(s) 2"),
    ("wrong location", ("westus2", [(AZ_SIZE, [], 4)]), None, 2, "the group is in westus2"),
    ("too few", ("eastus", [(AZ_SIZE, [], 1)]), None, 2, "has 1 free instance(s), 2 needed"),
])
def test_azure_reservation_that_does_not_fit_is_an_error_before_anything_is_created(
        arm, case, group, placements, count, message):
    gid = arm.add_capacity_reservation_group("crg-rg", "crg", group[0], group[1])
    opts = {"reservation": {"id": gid}}
    if placements:
        opts["placements"] = placements
    cluster = unique_name("spot")
    with pytest.raises(ConfigError) as err:
        azure_present(arm, cluster, count, **opts)
    assert message in str(err.value), case
    assert arm_vms(arm) == []


def test_azure_full_reservation_group_fails_over_like_a_stockout(arm):
    gid = arm.add_capacity_reservation_group("crg-rg", "crg", "eastus", [(AZ_SIZE, ["1"], 2)])
    looked_up = arm.resources[(gid + "/capacityReservations/r0").lower()]
    prov = azure(arm, reservation={"id": gid},
                 placements=[{"location": "eastus", "zone": "2"}, {"location": "eastus", "zone": "1"}])
    cluster = unique_name("spot")
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=AZ_SIZE, image=AZ_IMAGE)
    prepared = prov.preflight_create(spec, [0, 1])
    assert [(t["zone"], t["reservation"]) for t in prepared.tries] == [("1", True), ("2", False)]
    # taken by someone else between the look-up and the launch
    looked_up["properties"]["virtualMachinesAssociated"] = [{"id": "/other/vm1"}, {"id": "/other/vm2"}]
    launch = prov.create_nodes(spec, [0, 1], prepared=prepared, timeout=60)
    assert launch.info["landed"]["zone"] == "2" and launch.info["landed"]["reservation"] is False
    assert "AllocationFailed" in launch.info["failover"][0]["error"] or "no capacity left" in \
        launch.info["failover"][0]["error"]
    zones = [(v.get("zones"), "capacityReservation" in v["properties"]) for v in arm_vms(arm)]
    assert zones[0] == (["1"], True) and zones[-1] == (["2"], False)


# -- lifetime (gpu_cluster_ttl, gpu_cluster_idle_minutes) ------------------------------------------------------------
def lifetime_spec(cluster, instance_type, image, ttl_minutes=0, self_stop=False):
    return base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type, image=image,
                         ttl_minutes=ttl_minutes, self_stop=self_stop)


def test_aws_nodes_that_stop_themselves_are_terminated_and_carry_their_ttl(proxy):
    prov = aws(proxy)
    cluster = unique_name("spot")
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = lifetime_spec(cluster, "p4d.24xlarge", "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*",
                         ttl_minutes=90, self_stop=True)
    result = reconcile.ensure_present(prov, spec, 1, wait_timeout=60)
    run = run_requests(proxy)[-1]
    assert run["InstanceInitiatedShutdownBehavior"] == "terminate"
    node = result["nodes"][0]
    assert node["ttl_minutes"] == 90 and node["deadline"]
    launched = boto3.client("ec2", region_name="us-east-1", endpoint_url=proxy.url, aws_access_key_id="testing",
                            aws_secret_access_key="testing").describe_instances(InstanceIds=[node["id"]])
    inst = launched["Reservations"][0]["Instances"][0]
    assert {"Key": "aiinfra-ttl-minutes", "Value": "90"} in inst["Tags"]
    assert base.epoch_of(node["deadline"]) == base.epoch_of(inst["LaunchTime"].isoformat()) + 90 * 60
    # without a TTL or self_stop the image's default shutdown behaviour (stop) stays
    plain = lifetime_spec(unique_name("spot"), "p4d.24xlarge", spec.image)
    prov.ensure_firewall(plain.cluster, desired_rules(ADMIN))
    reconcile.ensure_present(prov, plain, 1, wait_timeout=60)
    assert "InstanceInitiatedShutdownBehavior" not in run_requests(proxy)[-1]


def test_gcp_ttl_is_compute_engines_max_run_duration_then_deleted(gce):
    prov = gcp(gce)
    spec = lifetime_spec(unique_name("spot"), "a3-highgpu-8g", GCE_IMAGE, ttl_minutes=150)
    result = reconcile.ensure_present(prov, spec, 2, wait_timeout=60)
    scheduling = gce_inserts(gce)[-1]["scheduling"]
    assert scheduling["maxRunDuration"] == {"seconds": "9000"}
    assert scheduling["instanceTerminationAction"] == "DELETE"
    assert scheduling["onHostMaintenance"] == "TERMINATE"  # a GPU VM, accepted by the double with the run limit
    assert gce_inserts(gce)[-1]["labels"]["aiinfra-ttl-minutes"] == "150"
    assert all(n["ttl_minutes"] == 150 and n["deadline"] for n in result["nodes"])


# -- azure: the self-stop deallocates the VM through its own identity ------------------------------------------------
VM_CONTRIBUTOR = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/" \
                 "9980e02c-c2be-4d73-94e8-173b1dc7cf3c" % SUBSCRIPTION


def role_puts(arm):
    return [(method, path) for method, path in arm.requests
            if method == "PUT" and "/providers/Microsoft.Authorization/roleAssignments/" in path]


# the ARM double's operations take a minute together: marker spot (make test-spot), not the default run
@pytest.mark.spot
def test_azure_self_stop_gives_each_vm_an_identity_and_a_role_on_itself_that_teardown_removes(arm):
    cluster = unique_name("stop")
    azure_present(arm, cluster, 2, self_stop=True)
    vms = dict((body["properties"]["osProfile"]["computerName"], body) for body in arm_vms(arm))
    assert sorted(vms) == ["%s-0" % cluster, "%s-1" % cluster]
    assert all(body["identity"] == {"type": "SystemAssigned"} for body in vms.values())
    # one role assignment per VM, on the VM itself, for its own identity, as ARM stored it
    assert len(arm.role_assignments) == 2 and len(role_puts(arm)) == 2
    for assignment in arm.role_assignments.values():
        props = assignment["properties"]
        vm = arm.resources[props["scope"].lower()]
        assert vm["type"] == "Microsoft.Compute/virtualMachines"
        assert props["principalId"] == vm["identity"]["principalId"] and props["principalType"] == "ServicePrincipal"
        assert props["roleDefinitionId"] == VM_CONTRIBUTOR
        assert assignment["id"].lower() == (props["scope"] + "/providers/Microsoft.Authorization/roleAssignments/"
                                            + assignment["name"]).lower()
    # a replaced node: its assignment goes before its VM, the new VM gets its own
    old = [a for a in arm.role_assignments.values() if a["properties"]["scope"].endswith("-1")][0]
    azure_present(arm, cluster, 2, replace=[1], self_stop=True)
    deletes = [i for i, (m, p) in enumerate(arm.requests) if m == "DELETE"]
    assert arm.requests[deletes[0]][1].lower() == old["id"].lower()
    assert old["id"].lower() not in arm.role_assignments and len(arm.role_assignments) == 2
    # teardown: no role assignment left behind (the double keeps those of deleted VMs, as a leak would)
    result = reconcile.ensure_absent(azure(arm), cluster)
    assert result["changed"] and arm.role_assignments == {}


# the ARM double's operations take a minute together: marker spot (make test-spot), not the default run
@pytest.mark.spot
def test_azure_self_stop_without_permission_to_assign_roles_stops_before_anything_is_made(arm):
    arm.permissions = CONTRIBUTOR
    cluster = unique_name("stop")
    with pytest.raises(ConfigError) as err:
        azure_present(arm, cluster, 1, self_stop=True)
    assert "may not assign roles (Microsoft.Authorization/roleAssignments/write)" in str(err.value)
    assert "self_stop_deallocate: false" in err.value.hint
    assert arm_vms(arm) == [] and role_puts(arm) == []
    # the documented way out: no identity, a power-off from inside (billed until teardown)
    azure_present(arm, cluster, 1, self_stop=True, self_stop_deallocate=False)
    assert "identity" not in arm_vms(arm)[-1] and role_puts(arm) == []


# the ARM double's operations take a minute together: marker spot (make test-spot), not the default run
@pytest.mark.spot
def test_azure_a_role_assignment_refused_at_launch_removes_the_vms_it_made(arm):
    # the permissions read says yes (e.g. a condition it does not show), the assignment itself is refused
    cluster = unique_name("stop")
    arm.permissions = [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]
    real_may = arm._may  # pylint: disable=protected-access

    def refuse(action, scope):
        if action.endswith("roleAssignments/write"):
            arm.permissions = CONTRIBUTOR
            try:
                return real_may(action, scope)
            finally:
                arm.permissions = [{"actions": ["*"], "notActions": []}]
        return real_may(action, scope)
    arm._may = refuse  # pylint: disable=protected-access
    with pytest.raises(ConfigError) as err:
        azure_present(arm, cluster, 1, self_stop=True)
    assert "cannot let VM %s-0 deallocate itself" % cluster in str(err.value)
    assert "Microsoft.Authorization/roleAssignments/write" in str(err.value)
    assert azure(arm).list_nodes(cluster) == []


# the ARM double's operations take a minute together: marker spot (make test-spot), not the default run
@pytest.mark.spot
def test_azure_self_stop_role_can_be_narrowed_and_a_wrong_one_is_named(arm):
    cluster = unique_name("stop")
    with pytest.raises(ConfigError) as err:
        azure_present(arm, cluster, 1, self_stop=True, self_stop_role="00000000-0000-4000-8000-000000000bad")
    assert "RoleDefinitionDoesNotExist" in str(err.value)
    azure_present(arm, cluster, 1, self_stop=True, self_stop_role="b24988ac-6180-42a0-ab88-20f7382dd24c")
    assert [a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] for a in arm.role_assignments.values()] == [
        "b24988ac-6180-42a0-ab88-20f7382dd24c"]
