"""The clouds' stand-ins as pytest fixtures, shared by every test file that talks to them: moto (a real EC2 API server,
loopback) behind the EC2 proxy (tests/integration/ec2_proxy.py), the Compute double (gce_double.py) and the ARM
double (arm_double.py). A test file imports the fixtures it uses by name (``from cloud_servers import moto, proxy``),
or under the name its tests take (``from cloud_servers import gce as double``).

Each fixture also shuts the way to the real service: no credentials, config files or metadata servers of the
machine's are read.
"""

from __future__ import annotations

import pytest

from arm_double import ArmDouble
from ec2_proxy import Ec2Proxy, MotoServer
from gce_double import ComputeDouble, service_account_file

# the environment google.auth.default() and our GCP code read credentials and projects from
GCP_ISOLATE = ("GOOGLE_APPLICATION_CREDENTIALS", "GCP_SERVICE_ACCOUNT_FILE", "GCP_PROJECT", "GOOGLE_CLOUD_PROJECT",
               "GCP_AUTH_KIND", "GCP_SERVICE_ACCOUNT_CONTENTS", "GCP_ACCESS_TOKEN", "CLOUDSDK_CORE_PROJECT")


@pytest.fixture(scope="module")
def moto():
    """moto in server mode, one per test module (each test's proxy starts empty of calls)."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def proxy(moto):  # pylint: disable=redefined-outer-name
    """The EC2 proxy in front of moto: it records the calls and serves what moto lacks (placement groups,
    capacity reservations)."""
    px = Ec2Proxy(moto.url)
    px.moto_url = moto.url
    yield px
    px.stop()


@pytest.fixture
def gce(monkeypatch, tmp_path):
    """The Compute double, with a service-account file of its own and never Google: no gcloud config and no
    metadata server (google.auth.default() would look for both)."""
    for name in GCP_ISOLATE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    served = ComputeDouble()
    served.sa_file = service_account_file(str(tmp_path / "sa.json"), served)
    yield served
    served.stop()


def _point_at(double, monkeypatch):
    for key, value in double.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AZURE_SECRET", "AZURE_TENANT"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="module")
def arm():
    """The ARM double (management API and its token endpoint), one per test module: a test that counts what exists
    removes what it made, or takes ``fresh_arm``."""
    double = ArmDouble()
    yield double
    double.stop()


@pytest.fixture
def arm_env(arm, monkeypatch):  # pylint: disable=redefined-outer-name
    """The module's ARM double, with the process environment pointed at it (its CA bundle and authority host)."""
    _point_at(arm, monkeypatch)
    return arm


@pytest.fixture
def fresh_arm(monkeypatch):
    """An ARM double of the test's own, empty, with the process environment pointed at it."""
    double = ArmDouble()
    _point_at(double, monkeypatch)
    yield double
    double.stop()
