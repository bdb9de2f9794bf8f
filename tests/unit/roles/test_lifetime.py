"""The lifetime check's decision (roles/gpu_cluster/files/aiinfra_lifetime.py): when a node stops itself."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = importlib.util.spec_from_file_location(
    "aiinfra_lifetime", os.path.join(ROOT, "roles", "gpu_cluster", "files", "aiinfra_lifetime.py"))
lifetime = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(lifetime)

T0 = 1796085601.0  # 2026-12-01T00:40:01Z
IDLE = {"idle_seconds": 600, "deadline": "", "ttl_seconds": 0}


def test_the_first_check_starts_the_idle_clock():
    action, reason, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    assert action == "keep" and state["last_busy"] == T0 and "idle for 0 s of 600 s" in reason


def test_idle_for_the_whole_idle_time_stops_and_one_second_less_keeps():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    assert lifetime.decide(T0 + 599, IDLE, state, "boot-1", None)[0] == "keep"
    action, reason, _s = lifetime.decide(T0 + 600, IDLE, state, "boot-1", None)
    assert action == "stop" and reason.startswith("idle for 600 s")


def test_a_busy_check_restarts_the_idle_clock():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    action, _r, state = lifetime.decide(T0 + 500, IDLE, state, "boot-1", "job unit aiinfra-torchrun-x.service active")
    assert action == "keep" and state["last_busy"] == T0 + 500
    assert lifetime.decide(T0 + 1000, IDLE, state, "boot-1", None)[0] == "keep"
    assert lifetime.decide(T0 + 1100, IDLE, state, "boot-1", None)[0] == "stop"


def test_a_new_boot_starts_the_idle_clock_again():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    action, _r, state = lifetime.decide(T0 + 5000, IDLE, state, "boot-2", None)
    assert action == "keep" and state["last_busy"] == T0 + 5000


def test_no_idle_limit_never_stops_an_idle_node():
    config = {"idle_seconds": 0, "deadline": "", "ttl_seconds": 0}
    _a, _r, state = lifetime.decide(T0, config, {}, "b", None)
    assert lifetime.decide(T0 + 10 ** 7, config, state, "b", None)[0] == "keep"


def test_the_deadline_stops_even_a_busy_node():
    config = {"idle_seconds": 0, "deadline": "2026-12-01T02:10:01Z", "ttl_seconds": 5400}
    assert lifetime.decide(T0 + 5399, config, {}, "b", "GPU utilisation 97%")[0] == "keep"
    action, reason, _s = lifetime.decide(T0 + 5400, config, {}, "b", "GPU utilisation 97%")
    assert action == "stop" and reason == "time to live reached (deadline 2026-12-01T02:10:01Z)"


def test_without_a_deadline_from_the_cloud_the_ttl_counts_from_the_first_check_and_survives_a_reboot():
    config = {"idle_seconds": 0, "deadline": "", "ttl_seconds": 3600}
    _a, _r, state = lifetime.decide(T0, config, {}, "boot-1", None)
    assert state["deadline"] == T0 + 3600
    _a, _r, state = lifetime.decide(T0 + 1800, config, state, "boot-2", None)
    assert state["deadline"] == T0 + 3600
    assert lifetime.decide(T0 + 3600, config, state, "boot-2", None)[0] == "stop"


class Run(object):
    """subprocess.run for busy_now: systemctl's list of active job units, nvidia-smi's utilisations (None: absent)."""

    def __init__(self, units="", gpus=None):
        self.units, self.gpus, self.calls = units, gpus, []

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        if cmd[0] == "systemctl":
            return subprocess.CompletedProcess(cmd, 0, self.units, "")
        if self.gpus is None:
            raise FileNotFoundError("nvidia-smi")
        return subprocess.CompletedProcess(cmd, 0, self.gpus, "")


@pytest.mark.parametrize("units, gpus, busy", [
    ("aiinfra-torchrun-job1.service loaded active running job\n", None, "job unit aiinfra-torchrun-job1.service active"),
    ("", None, None),                               # a CPU node without a job unit: idle
    ("", "0\n3\n4\n0\n", None),                     # every GPU under 5 %: idle
    ("", "0\n71\n", "GPU utilisation 0/71% (threshold 5%)"),
    ("", "5\n", "GPU utilisation 5% (threshold 5%)"),  # at the threshold counts as busy
])
def test_busy_is_a_job_unit_or_a_gpu_at_the_threshold(units, gpus, busy):
    run = Run(units, gpus)
    assert lifetime.busy_now({"gpu_percent": 5, "unit_prefix": "aiinfra-torchrun-"}, run=run) == busy
    assert run.calls[0][-1] == "aiinfra-torchrun-*"


# -- azure: the VM deallocates itself through its identity (a local stand-in of the instance metadata service and
# Resource Manager, answering with the shapes the real services document) ---------------------------------------

SUB = "00000000-0000-4000-8000-00000000a2e0"
VM_ID = "/subscriptions/%s/resourceGroups/aiinfra-c1/providers/Microsoft.Compute/virtualMachines/c1-0" % SUB
PRINCIPAL = "5b3a7f8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


class AzureStandIn(object):
    """IMDS (``/metadata/...``, header ``Metadata: true`` required) and Resource Manager (``POST <vm>/deallocate``,
    a bearer token the IMDS issued, for the identity that has a role on the VM) on one loopback port."""

    def __init__(self, identity=True, role=True):
        self.identity, self.role = identity, role
        self.requests, self.deallocated = [], False
        self.token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.stand-in.%s" % PRINCIPAL
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                stand_in.requests.append(("GET", self.path, dict(self.headers)))
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/metadata/instance/compute":
                    if self.headers.get("Metadata") != "true":
                        return self._answer(400, {"error": "Bad request. Required metadata header not specified"})
                    return self._answer(200, {
                        "azEnvironment": "AzurePublicCloud", "location": "eastus", "name": "c1-0",
                        "resourceGroupName": "aiinfra-c1", "resourceId": VM_ID, "subscriptionId": SUB,
                        "vmId": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "vmSize": "Standard_ND96isr_H100_v5",
                        "zone": ""})
                if url.path == "/metadata/identity/oauth2/token":
                    if self.headers.get("Metadata") != "true":
                        return self._answer(400, {"error": "invalid_request",
                                                  "error_description": "Required metadata header not specified"})
                    if not stand_in.identity:
                        return self._answer(400, {"error": "invalid_request", "error_description": "Identity not found"})
                    assert query["api-version"] == "2018-02-01" and query["resource"] == stand_in.url + "/", query
                    return self._answer(200, {
                        "access_token": stand_in.token, "client_id": "9c4a1c2e-0000-4000-8000-000000000001",
                        "expires_in": "86399", "expires_on": "1796172001", "ext_expires_in": "86399",
                        "not_before": "1796085301", "resource": query["resource"], "token_type": "Bearer"})
                return self._answer(404, {"error": {"code": "NotFound", "message": "no route"}})

            def do_POST(self):  # noqa: N802
                stand_in.requests.append(("POST", self.path, dict(self.headers)))
                url = urllib.parse.urlsplit(self.path)
                if self.headers.get("Authorization") != "Bearer " + stand_in.token:
                    return self._answer(401, {"error": {"code": "InvalidAuthenticationToken",
                                                        "message": "The access token is invalid."}})
                if url.path != VM_ID + "/deallocate" or "api-version=" not in url.query:
                    return self._answer(404, {"error": {"code": "NotFound", "message": "no route"}})
                if not stand_in.role:
                    return self._answer(403, {"error": {"code": "AuthorizationFailed", "message": (
                        "The client '%s' with object id '%s' does not have authorization to perform action "
                        "'Microsoft.Compute/virtualMachines/deallocate/action' over scope '%s' or the scope is "
                        "invalid. If access was recently granted, please refresh your credentials."
                        % (PRINCIPAL, PRINCIPAL, VM_ID))}})
                stand_in.deallocated = True
                operation = "%s/subscriptions/%s/providers/Microsoft.Compute/locations/eastus/operations/op-1" % (
                    stand_in.url, SUB)
                return self._answer(202, None, {"Azure-AsyncOperation": operation + "?api-version=2024-07-01",
                                                "Location": operation + "?monitor=true&api-version=2024-07-01"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def config(self):
        return {"azure_deallocate": True, "imds_url": self.url, "arm_url": self.url}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def azure_stand_in():
    made = []

    def make(**kwargs):
        made.append(AzureStandIn(**kwargs))
        return made[-1]
    yield make
    for stand_in in made:
        stand_in.close()


def test_azure_stop_deallocates_the_vm_through_its_identity_and_does_not_power_off(azure_stand_in):
    azure = azure_stand_in()
    state = {}
    power_off, what = lifetime.stop(azure.config(), state, now=T0)
    assert not power_off and azure.deallocated, what
    assert what == "deallocation of %s accepted (HTTP 202)" % VM_ID and state["deallocate_requested"] == T0
    compute, token, deallocate = azure.requests
    assert compute[1] == "/metadata/instance/compute?api-version=2021-02-01" and compute[2]["Metadata"] == "true"
    assert token[1].startswith("/metadata/identity/oauth2/token?") and token[2]["Metadata"] == "true"
    assert deallocate[0] == "POST" and deallocate[1] == VM_ID + "/deallocate?api-version=2024-07-01"
    assert deallocate[2]["Authorization"] == "Bearer " + azure.token
    # the next checks wait for Azure, then (not deallocated after the grace) power off after all
    assert lifetime.stop(azure.config(), state, now=T0 + 30) == (
        False, "deallocation asked for 30 s ago; waiting for Azure")
    assert len(azure.requests) == 3
    power_off, what = lifetime.stop(azure.config(), state, now=T0 + lifetime.DEALLOCATE_GRACE)
    assert power_off and "not deallocated 600 s after asking" in what


@pytest.mark.parametrize("kwargs, said", [
    ({"identity": False}, "HTTP 400 from %s/metadata/identity/oauth2/token: "
                          '{"error": "invalid_request", "error_description": "Identity not found"}'),
    ({"role": False}, "HTTP 403 from %s" + VM_ID + "/deallocate: "),
])
def test_azure_stop_powers_off_when_the_vm_cannot_deallocate_itself_and_says_why(azure_stand_in, kwargs, said):
    azure = azure_stand_in(**kwargs)
    state = {}
    power_off, what = lifetime.stop(azure.config(), state, now=T0)
    assert power_off and not azure.deallocated
    assert what.startswith("deallocation failed (" + said % azure.url), what
    assert what.endswith("powering off instead - Azure bills the VM until teardown")
    assert "deallocate_requested" not in state and state["deallocate_error"]
    if "role" in kwargs:
        assert "Microsoft.Compute/virtualMachines/deallocate/action" in what


def test_without_azure_deallocate_the_stop_is_a_power_off_and_nothing_is_asked(azure_stand_in):
    azure = azure_stand_in()
    assert lifetime.stop({"azure_deallocate": False, "imds_url": azure.url}, {}, now=T0) == (True, "powering off")
    assert lifetime.stop({}, {}, now=T0) == (True, "powering off")
    assert azure.requests == []


def test_no_metadata_service_powers_off(azure_stand_in):
    azure = azure_stand_in()
    url = azure.url
    azure.close()
    power_off, what = lifetime.stop({"azure_deallocate": "True", "imds_url": url, "arm_url": url}, {}, now=T0)
    assert power_off and "URLError" in what


def test_a_new_boot_forgets_the_deallocation_asked_for():
    _a, _r, state = lifetime.decide(T0, IDLE, {}, "boot-1", None)
    state["deallocate_requested"] = T0
    _a, _r, again = lifetime.decide(T0 + 3600, IDLE, state, "boot-2", None)
    assert "deallocate_requested" not in again
