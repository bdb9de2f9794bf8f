"""The gcp cloud's pure parts: request shapes, error classification, the credential chain (no network)."""

from __future__ import annotations

import json
import uuid

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import NodeSpec, RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import api, shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.errors import (
    HttpError, classify, classify_operation)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl demo"
RES = {"machine_type": "a3-highgpu-8g", "gpus": 8, "image": "projects/p/global/images/img",
       "network": "projects/p/global/networks/default", "subnetworks": {}, "accelerators": [], "spot": False,
       "root_volume_size": 200}


def spec(**kw):
    return NodeSpec(cluster=kw.pop("cluster", "c1"), ssh_public_key=KEY, instance_type="a3-highgpu-8g",
                    image="projects/p/global/images/family/f", **kw)


def test_request_id_is_a_stable_uuid_that_changes_with_the_request():
    rid = shapes.request_id("c1", "us-central1-a", "bulkInsert", {"count": "2"})
    assert str(uuid.UUID(rid)) == rid
    assert rid == shapes.request_id("c1", "us-central1-a", "bulkInsert", {"count": "2"})
    assert rid != shapes.request_id("c1", "us-central1-a", "bulkInsert", {"count": "3"})
    assert rid != shapes.request_id("c1", "us-central1-b", "bulkInsert", {"count": "2"})
    assert rid != shapes.request_id("c1", "us-central1-a", "bulkInsert", {"count": "2"}, generation=1)


def test_bulk_insert_names_ranks_and_sets_terminate_for_gpus():
    body = shapes.bulk_insert_body(spec(), [0, 1, 2], "us-central1-a", RES, 3, "projects/p/regions/r/resourcePolicies/x")
    assert sorted(body["perInstanceProperties"]) == ["c1-0", "c1-1", "c1-2"]
    assert body["count"] == body["minCount"] == "3"
    props = body["instanceProperties"]
    assert props["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": True}
    assert props["labels"]["aiinfra-gpu-cluster"] == "c1" and props["labels"]["aiinfra-managed-by"] == "aiinfra_gpu_cluster"
    assert props["tags"]["items"] == ["aiinfra-c1"]
    assert props["metadata"]["items"][0] == {"key": "ssh-keys", "value": "gpuadmin:" + KEY}
    assert props["disks"][0]["initializeParams"]["diskSizeGb"] == "200"
    assert props["resourcePolicies"] == ["x"]  # names, not URLs (the discovery document)


def test_bulk_insert_without_gpus_has_no_scheduling_and_spot_is_deleted_on_preemption():
    plain = shapes.bulk_insert_body(spec(), [0], "us-central1-a", dict(RES, gpus=0), 1)
    assert "scheduling" not in plain["instanceProperties"] and "resourcePolicies" not in plain["instanceProperties"]
    spot = shapes.bulk_insert_body(spec(), [0], "us-central1-a", dict(RES, spot=True), 1)["instanceProperties"]
    assert spot["scheduling"]["provisioningModel"] == "SPOT"
    assert spot["scheduling"]["instanceTerminationAction"] == "DELETE"
    assert spot["scheduling"]["onHostMaintenance"] == "TERMINATE"


@pytest.mark.parametrize("image, expected", [
    ("projects/debian-cloud/global/images/family/debian-12", ("debian-cloud", "debian-12", True)),
    ("https://www.googleapis.com/compute/v1/projects/p/global/images/img-1", ("p", "img-1", False)),
])
def test_parse_image(image, expected):
    assert shapes.parse_image(image) == expected


def test_parse_image_refuses_other_shapes():
    with pytest.raises(ConfigError, match="is not a Compute Engine image"):
        shapes.parse_image("debian-12")


def test_node_from_instance_reads_rank_from_the_name():
    inst = {"name": "c1-3", "id": "77", "status": "TERMINATED", "zone": "https://h/compute/v1/projects/p/zones/z-1-a",
            "machineType": "https://h/x/machineTypes/a3-highgpu-8g",
            "labels": {"aiinfra-gpu-cluster": "c1", "aiinfra-gpu-ssh-user": "gpuadmin", "team": "ml"},
            "networkInterfaces": [{"networkIP": "10.0.0.5", "accessConfigs": [{"natIP": "34.1.2.3"}]}]}
    node = shapes.node_from_instance(inst, "c1")
    assert (node.rank, node.state, node.zone, node.instance_type) == (3, "stopped", "z-1-a", "a3-highgpu-8g")
    assert (node.ssh_host, node.private_address, node.ssh_user, node.labels) == ("34.1.2.3", "10.0.0.5", "gpuadmin",
                                                                                 {"team": "ml"})
    assert shapes.rank_from_name("c1-x-3", "c1") == shapes.UNRANKED


def test_firewall_bodies_use_source_tags_inside_and_split_ip_families():
    rules = desired_rules(["198.51.100.0/24", "2001:db8::/48", "203.0.113.0/24"])
    bodies = shapes.firewall_bodies("c1", rules, "projects/p/global/networks/default")
    assert sorted(bodies) == ["aiinfra-c1-internal", "aiinfra-c1-tcp22", "aiinfra-c1-tcp22-v6"]
    assert bodies["aiinfra-c1-tcp22"]["sourceRanges"] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert bodies["aiinfra-c1-tcp22-v6"]["sourceRanges"] == ["2001:db8::/48"]
    internal = bodies["aiinfra-c1-internal"]
    assert internal["sourceTags"] == ["aiinfra-c1"] and "sourceRanges" not in internal
    assert internal["allowed"] == [{"IPProtocol": "all"}]
    back = [r for body in bodies.values() for r in shapes.rules_from_firewall(body, "c1")]
    assert set(back) == set(r for r in rules if not shapes.is_implied(r))
    assert shapes.firewall_name_re("c1").match("aiinfra-c1-tcp22")
    assert not shapes.firewall_name_re("c1").match("aiinfra-c1-x-internal")


def test_firewall_refuses_egress_it_cannot_express():
    with pytest.raises(ConfigError, match="not supported on cloud gcp"):
        shapes.firewall_bodies("c1", [RuleSpec("egress", "tcp", 443, 443, "10.0.0.0/8")], "n")


@pytest.mark.parametrize("code, cls", [
    ("ZONE_RESOURCE_POOL_EXHAUSTED", CapacityError), ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", CapacityError),
    ("QUOTA_EXCEEDED", QuotaError), ("RESOURCE_NOT_FOUND", NotFoundError), ("INTERNAL_ERROR", CloudError),
    ("INVALID_USAGE", ConfigError),
])
def test_operation_errors_are_classified_once(code, cls):
    err = classify_operation({"status": "DONE", "error": {"errors": [{"code": code, "message": "m"}]}})
    assert err.__class__ is cls and err.code == code


def test_operation_without_error_is_none_and_quota_names_metric():
    assert classify_operation({"status": "DONE"}) is None
    op = {"status": "DONE", "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'GPUS' exceeded.",
                                                  "errorDetails": [{"quotaInfo": {"metricName": "compute/gpus",
                                                                                  "dimensions": {"region": "r1"},
                                                                                  "limit": 8}}]}]}}
    err = classify_operation(op, {"count": 2, "machine_type": "a3-highgpu-8g"})
    assert "compute/gpus in r1" in str(err) and "limit 8" in str(err) and "2 x a3-highgpu-8g" in str(err)


@pytest.mark.parametrize("status, reason, cls", [
    (429, "rateLimitExceeded", TransientError), (503, "backendError", TransientError),
    (403, "rateLimitExceeded", TransientError), (404, "notFound", NotFoundError),
    (403, "quotaExceeded", QuotaError), (403, "forbidden", ConfigError), (400, "invalid", ConfigError),
    (409, "alreadyExists", ConfigError),
])
def test_http_errors_are_classified_once(status, reason, cls):
    err = classify(HttpError(status, {"message": "m", "errors": [{"reason": reason}]}, "GET x"))
    assert err.__class__ is cls


def test_connection_errors_are_transient_and_others_are_not_ours():
    import requests
    assert isinstance(classify(requests.exceptions.ConnectionError("refused")), TransientError)
    assert classify(ValueError("x")) is None


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_credentials_file_problems_say_where_they_looked(tmp_path):
    with pytest.raises(ConfigError, match=r"/no/such.json \(from GCP_SERVICE_ACCOUNT_FILE\) does not exist"):
        api.resolve_credentials({}, {"GCP_SERVICE_ACCOUNT_FILE": "/no/such.json"})
    bad = write(tmp_path, "bad.json", "{not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        api.resolve_credentials({"credentials_file": bad}, {})
    user = write(tmp_path, "user.json", {"type": "authorized_user"})
    with pytest.raises(ConfigError, match=r"\(from GOOGLE_APPLICATION_CREDENTIALS\) is not a service-account key"):
        api.resolve_credentials({}, {"GOOGLE_APPLICATION_CREDENTIALS": user})
    short = write(tmp_path, "short.json", {"type": "service_account", "client_email": "x"})
    with pytest.raises(ConfigError, match="lacks private_key, token_uri"):
        api.resolve_credentials({"credentials_file": short}, {})


@pytest.mark.parametrize("opts, spec_kw, message", [
    ({"placements": [{"zone": "us-central1-a"}], "project": "X"}, {}, "is not a Google Cloud project id"),
    ({}, {}, "placements or region is required"),
    ({"placements": [{"zone": None}]}, {}, "a placement needs a zone"),
    ({"placements": [{"zone": "uscentral1a"}]}, {}, "is not a Compute Engine zone name"),
    ({"region": "us-central1", "min_count": 0}, {}, "min_count must be at least 1"),
    ({"region": "us-central1", "root_volume_size": 5}, {}, "root_volume_size must be"),
    ({"region": "us-central1", "accelerators": [{"type": "nvidia-tesla-t4", "count": 0}]}, {}, "needs a type"),
    ({"region": "us-central1"}, {"labels": {"Team": "x"}}, "is not a valid Compute Engine label"),
])
def test_offline_preflight(opts, spec_kw, message):
    with pytest.raises(ConfigError, match=message):
        GcpProvider(opts).preflight(spec(**spec_kw))
