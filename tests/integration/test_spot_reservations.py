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
from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT, ArmDouble, ArmError
from ec2_proxy import Ec2Proxy, MotoServer
from gce_double import ApiError, ComputeDouble, service_account_file

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CapacityError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

PUBKEY = open(KEY + ".pub").read().strip() if os.path.exists(KEY + ".pub") else ""
GCE_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
AZ_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
AZ_SIZE = "Standard_ND96isr_H100_v5"
ADMIN = ["198.51.100.0/24"]


# -- the stand-ins ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def proxy(moto):
    px = Ec2Proxy(moto.url)
    yield px
    px.stop()


@pytest.fixture
def gce(monkeypatch, tmp_path):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GCP_SERVICE_ACCOUNT_FILE", "GCP_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    served = ComputeDouble()
    served.sa_file = service_account_file(str(tmp_path / "sa.json"), served)
    yield served
    served.stop()


@pytest.fixture
def arm(monkeypatch):
    double = ArmDouble()
    for key, value in double.env().items():
        monkeypatch.setenv(key, value)
    yield double
    double.stop()


def aws(proxy, **opts):
    options = {"region": "us-east-1", "endpoint_url": proxy.url, "access_key": "testing", "secret_key": "testing",
               "placements": [{"availability_zone": "us-east-1a"}, {"availability_zone": "us-east-1b"}],
               "placement_group": False, "efa": False,
               "image_owners": ["099720109477"]}
    options.update(opts)
    return AwsProvider(options)


def aws_present(proxy, cluster, count, instance_type="p4d.24xlarge", **opts):
    prov = aws(proxy, **opts)
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type,
                         image="ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*")
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60)


def gcp(gce, **opts):
    options = {"credentials_file": gce.sa_file, "endpoint_url": gce.url, "allow_network_rules": True,
               "placements": [{"zone": "us-central1-a"}, {"zone": "us-central1-b"}]}
    options.update(opts)
    return GcpProvider(options)


def gcp_present(gce, cluster, count, instance_type="a3-highgpu-8g", **opts):
    prov = gcp(gce, **opts)
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=instance_type, image=GCE_IMAGE)
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60)


def azure(arm, **opts):
    options = {"subscription_id": SUBSCRIPTION, "tenant": TENANT, "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
               "authority_host": arm.url, "endpoint_url": arm.url, "location": "eastus",
               "placements": [{"location": "eastus"}]}
    options.update(opts)
    return AzureProvider(options)


def azure_present(arm, cluster, count, size=AZ_SIZE, **opts):
    prov = azure(arm, **opts)
    prov.ensure_firewall(cluster, desired_rules(ADMIN))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type=size, image=AZ_IMAGE)
    prov.preflight(spec)
    return reconcile.ensure_present(prov, spec, count, wait_timeout=60)


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
