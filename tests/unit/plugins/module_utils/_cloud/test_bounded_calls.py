"""Every cloud client call is bounded (a connect and a read timeout) and retried by one layer only (the
collection's retry.call); the nodes' hardening (IMDS hop limit, project SSH keys) is in the requests."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import provider as azure
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import api as gcp_api
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.shapes import bulk_insert_body


def test_azure_clients_have_timeouts_and_no_sdk_retries(monkeypatch):
    made = []

    class Client(object):
        def __init__(self, credential, subscription, **kwargs):
            made.append(kwargs)

    class Credential(object):
        def __init__(self, *args, **kwargs):
            pass
    monkeypatch.setattr(azure, "_sdk", lambda: (Credential, Credential, Client, Client, Client))
    prov = azure.AzureProvider({"subscription_id": "s", "tenant": "t", "client_id": "c", "secret": "x"}, environ={})
    prov.clients()
    assert len(made) == 3
    for kwargs in made:
        assert kwargs["retry_total"] == 0 and kwargs["retry_connect"] == 0 and kwargs["retry_status"] == 0
        assert 0 < kwargs["connection_timeout"] <= 30 and 0 < kwargs["read_timeout"] <= 300


def test_aws_client_has_timeouts_and_one_attempt(monkeypatch):
    prov = AwsProvider({"region": "us-east-1", "access_key": "a", "secret_key": "b"})
    config = prov.ec2.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.connect_timeout and config.read_timeout


def test_gcp_every_call_has_a_connect_and_read_timeout():
    seen = []

    class Session(object):
        def request(self, method, url, json=None, params=None, timeout=None):
            seen.append(timeout)

            class Resp(object):
                status_code = 200
                content = b"{}"

                def json(self):
                    return {}
            return Resp()
    api = gcp_api.ComputeApi(Session(), "p")
    api.call("GET", api.path("zones"))
    assert seen and all(isinstance(t, tuple) and len(t) == 2 and all(t) for t in seen)


def test_aws_imds_hop_limit_is_1():
    prov = AwsProvider({"region": "us-east-1"}, client=object())
    res = {"image": {"ImageId": "ami-0123456789abcdef0", "RootDeviceName": "/dev/sda1"}, "key": {"name": None},
           "placement_group": None, "efa": {"p4d.24xlarge": []}, "groups": ["sg-1"], "root_size": 8}
    trial = {"instance_type": "p4d.24xlarge", "availability_zone": "us-east-1a", "subnet_id": "subnet-1"}
    request = prov._run_request(base.NodeSpec(cluster="c1", owner="alice@lab"), [0], trial, res, 1)
    assert request["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                          "HttpPutResponseHopLimit": 1}
    tags = dict((t["Key"], t["Value"]) for spec in request["TagSpecifications"] for t in spec["Tags"])
    assert tags["aiinfra-owner"] == "alice@lab"


def test_gcp_nodes_block_project_ssh_keys_and_carry_the_owner_label():
    spec = base.NodeSpec(cluster="c1", ssh_public_key="ssh-ed25519 AAAA", owner="Alice@Lab.example")
    res = {"image": "projects/p/global/images/i", "network": "projects/p/global/networks/default",
           "machine_type": "a2-highgpu-1g", "gpus": 1}
    props = bulk_insert_body(spec, [0], "us-central1-a", res, 1)["instanceProperties"]
    metadata = dict((m["key"], m["value"]) for m in props["metadata"]["items"])
    assert metadata["block-project-ssh-keys"] == "TRUE"
    assert props["labels"]["aiinfra-owner"] == "alice_lab_example"


def test_azure_an_operation_whose_polling_is_throttled_is_started_again_by_the_one_retry_layer():
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry

    class _Error(object):
        def __init__(self, code, message):
            self.code, self.message = code, message

    class _Response(object):
        def __init__(self, status, headers):
            self.status_code, self.headers = status, headers

    class HttpResponseError(Exception):
        """azure-core's exception, as the classifier sees it (by class name)."""

        def __init__(self, status, code, message, headers=None):
            super(HttpResponseError, self).__init__(message)
            self.status_code = status
            self.error = _Error(code, message)
            self.response = _Response(status, headers or {})

    class Poller(object):
        def __init__(self, fail):
            self.fail = fail

        def wait(self, timeout=None):
            if self.fail:
                raise HttpResponseError(429, "TooManyRequests", "The request is being throttled.", {"Retry-After": "0"})

        def done(self):
            return True

        def result(self):
            return {"name": "n1"}

    started = []

    def begin(group, name):
        started.append(name)
        return Poller(fail=len(started) < 3)          # the first two polls are throttled
    slept = []
    prov = azure.AzureProvider({}, clients=(None, None, None), environ={},
                               policy=retry.RetryPolicy(attempts=5, sleep=slept.append, rand=lambda: 0.0))
    prov.sleep = slept.append
    assert prov._lros([("n1", begin, ("g", "n1"))], "things") == {"n1": {"name": "n1"}}
    assert started == ["n1", "n1", "n1"] and len(slept) == 2
    # bounded: with 2 attempts the throttling is the error
    started[:] = []
    prov.policy = retry.RetryPolicy(attempts=2, sleep=slept.append, rand=lambda: 0.0)
    try:
        prov._lros([("n1", begin, ("g", "n1"))], "things")
        raise AssertionError("no error")
    except Exception as exc:  # pylint: disable=broad-except
        assert "throttling" in str(exc) and started == ["n1", "n1"]
