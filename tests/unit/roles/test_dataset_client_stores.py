"""The storage client gets each store's library when a URI of its scheme is in use (the dataset role's
dataset_client_all_packages, rendered from the real role files), and the checkpoint uploader's root-only
EnvironmentFile carries every store's options (base64 of their JSON: nothing for systemd to unquote)."""

from __future__ import annotations

import json
import os
import re

import pytest

from test_role_rendering import ROLES, render, render_template, role_vars  # (importing it installs the collection loader)

GS = ["google-cloud-storage>=2.10"]
AZ = ["azure-storage-blob>=12.19", "azure-identity>=1.15"]


@pytest.mark.parametrize("uris,extra_packages,schemes", [
    ({"dataset_uri": "s3://data/x"}, [], ["s3"]),
    ({"dataset_uri": "gs://data/x"}, GS, ["gs"]),
    ({"dataset_uri": "AZ://data/x"}, AZ, ["az"]),
    ({"dataset_uri": "s3://data/x", "torchrun_checkpoint_uri": "az://ckpt/run", "torchrun_output_uri": "gs://out/p"},
     GS + AZ, ["s3", "az", "gs"]),
    ({}, [], []),
])
def test_the_client_gets_the_libraries_of_the_schemes_in_use(uris, extra_packages, schemes):
    variables = role_vars("dataset", "debian-12", gpu_cluster_cloud="aws", role_path=os.path.join(ROLES, "dataset"),
                          **uris)
    inputs = render("{{ dataset_client_inputs }}", variables)
    assert inputs["dataset_client_schemes"] == schemes
    assert render("{{ dataset_client_all_packages }}", variables) == ["boto3>=1.34"] + extra_packages
    stamp = render("{{ dataset_client_stamp }}", variables)
    other = render("{{ dataset_client_stamp }}", dict(variables, dataset_uri="gs://changed/x"))
    assert (stamp == other) == (schemes == ["gs"])  # another scheme: the client is installed again


def _systemd_env(text):
    """What systemd's EnvironmentFile parser makes of the file: comments and blank lines skipped, KEY="value" with
    backslash escapes inside the double quotes; any other line is not what the template is to write."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r'^([A-Z0-9_]+)="((?:[^"\\]|\\.)*)"$', line)
        assert match, "a line systemd would read otherwise: %r" % line
        out[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return out


def _uploader_options(opts, monkeypatch):
    """The options the uploader (python -m aiinfra_storage) reads from the rendered EnvironmentFile."""
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage import cli

    variables = role_vars("torchrun", "debian-12", role_path=os.path.join(ROLES, "torchrun"),
                          torchrun_job_name="example", gpu_cluster_storage_options=opts)
    env = _systemd_env(render_template("torchrun", "storage.env.j2", variables))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIINFRA_STORAGE_OPTIONS_FILE", raising=False)
    return env, cli._options(None)


# what systemd would unquote, expand or cut at: a double quote, a backslash, $, a single quote, a space, a newline
NASTY = "a\"b\\c$HOME ${X}'d e\nf%g"


@pytest.mark.parametrize("opts", [
    {"access_key": "AK", "secret_key": NASTY, "session_token": "tok" + NASTY, "region": "us-east-1",
     "endpoint_url": "http://10.0.0.1:9000"},
    {"credentials": json.dumps({"type": "service_account",
                                "private_key": "-----BEGIN PRIVATE KEY-----\n" + NASTY + "\n-----END-----\n"}),
     "endpoint_url": "http://10.0.0.1:9023"},
    {"account_name": "acct", "sas_token": "sv=2024&sig=a%2Bb" + NASTY},
    {"account_name": "acct", "account_key": NASTY, "anonymous": False},
], ids=["s3", "gs", "az-sas", "az-key"])
def test_every_stores_credentials_reach_the_uploader_intact(opts, monkeypatch):
    env, options = _uploader_options(opts, monkeypatch)
    assert list(env) == ["AIINFRA_STORAGE_OPTIONS_B64"]  # one way in for every store: no AWS_* lines
    assert options == opts


def test_empty_options_give_no_line_and_the_node_its_own_identity(monkeypatch):
    monkeypatch.delenv("AIINFRA_STORAGE_OPTIONS_B64", raising=False)
    for opts in ({}, None, {"access_key": "", "secret_key": None}):
        env, options = _uploader_options(opts, monkeypatch)
        assert env == {} and options == {}
    env, options = _uploader_options({"access_key": "", "region": "eu-west-1"}, monkeypatch)
    assert options == {"region": "eu-west-1"}
