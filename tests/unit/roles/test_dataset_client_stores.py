"""The storage client gets each store's library when a URI of its scheme is in use (the dataset role's
dataset_client_all_packages, rendered from the real role files), and the checkpoint uploader's root-only
EnvironmentFile carries the gs:// / az:// options (base64 of their JSON: nothing for systemd to unquote)."""

from __future__ import annotations

import base64
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
    """What systemd's EnvironmentFile parser makes of KEY="value" lines (backslash escapes inside double quotes)."""
    out = {}
    for line in text.splitlines():
        match = re.match(r'^([A-Z0-9_]+)="((?:[^"\\]|\\.)*)"$', line)
        if match:
            out[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return out


def test_the_uploader_gets_the_other_stores_options_as_json():
    key = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nAB\\C\"D\n-----END-----\n"}
    for opts in ({"credentials": json.dumps(key), "endpoint_url": "http://10.0.0.1:9023"},
                 {"account_name": "acct", "sas_token": "sv=2024&sig=a%2Bb\"c"}):
        variables = role_vars("torchrun", "debian-12", role_path=os.path.join(ROLES, "torchrun"),
                              torchrun_job_name="example", gpu_cluster_storage_options=opts)
        env = _systemd_env(render_template("torchrun", "storage.env.j2", variables))
        assert json.loads(base64.b64decode(env["AIINFRA_STORAGE_OPTIONS_B64"])) == opts
    # S3 alone: the AWS_* variables as before, no JSON
    variables = role_vars("torchrun", "debian-12", role_path=os.path.join(ROLES, "torchrun"), torchrun_job_name="x",
                          gpu_cluster_storage_options={"access_key": "AK", "secret_key": "SK"})
    env = _systemd_env(render_template("torchrun", "storage.env.j2", variables))
    assert env == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
