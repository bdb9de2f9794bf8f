"""AWX's built-in cloud credentials, as injected: the environment AWX's own injector code builds (tests/awx_injectors.py,
transcribed from AWX) is what the cloud modules read. AWS is exercised end to end in
tests/integration/test_awx_project.py (the EC2 calls are signed with the injected key)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import awx_injectors
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import credential_settings
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import api as gcp_api


def pem_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_google_compute_engine_credential(tmp_path):
    (tmp_path / "env").mkdir()
    env = awx_injectors.gce({"username": "trainer@ml-project.iam.gserviceaccount.com", "project": "ml-project",
                             "ssh_key_data": pem_key()}, {}, tmp_path)
    assert os.path.dirname(env["GCP_SERVICE_ACCOUNT_FILE"]) == str(tmp_path / "env")
    creds, project, where = gcp_api.resolve_credentials({}, env)
    assert where == "GCP_SERVICE_ACCOUNT_FILE"
    assert creds.service_account_email == "trainer@ml-project.iam.gserviceaccount.com"
    assert project == "ml-project"
    # the module's own option still wins over what AWX injects
    other = tmp_path / "other.json"
    other.write_text(open(env["GCP_SERVICE_ACCOUNT_FILE"]).read().replace("trainer@", "other@"))
    creds, project, where = gcp_api.resolve_credentials({"credentials_file": str(other), "project": "p2"}, env)
    assert where == "credentials_file" and creds.service_account_email.startswith("other@") and project == "p2"


def test_microsoft_azure_resource_manager_credential_service_principal():
    env = awx_injectors.azure_rm({"subscription": "00000000-0000-0000-0000-0000000000aa", "client": "app-id",
                                  "secret": "sp-secret", "tenant": "tenant-id"}, {})
    assert set(env) == {"AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_TENANT", "AZURE_SECRET"}
    got = credential_settings({}, env)
    assert got["kind"] == "service_principal"
    assert (got["tenant"], got["client_id"], got["secret"], got["subscription"]) == (
        "tenant-id", "app-id", "sp-secret", "00000000-0000-0000-0000-0000000000aa")
    assert got["read"] == ["AZURE_TENANT", "AZURE_CLIENT_ID", "AZURE_SECRET"]


def test_azure_authority_from_the_endpoints_credential():
    env = awx_injectors.azure_rm({"subscription": "sub", "client": "c", "secret": "s", "tenant": "t"}, {})
    env["AZURE_AUTHORITY_HOST"] = "https://login.microsoftonline.us"
    assert credential_settings({}, env)["authority"] == "https://login.microsoftonline.us"


def test_amazon_web_services_credential_reaches_boto3(monkeypatch):
    import boto3
    env = awx_injectors.aws({"username": "AKIAEXAMPLE", "password": "secret", "security_token": "token"}, {})
    assert env == {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SECURITY_TOKEN": "token",
                   "AWS_SESSION_TOKEN": "token"}
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    frozen = boto3.session.Session().get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AKIAEXAMPLE", "secret", "token")
