"""The README's load order, from an empty AWX, with awxkit's own ``awx import`` (its CLI and import code: natural
keys, ``_import_list``, ``_assign_related``) against tests/integration/awx_api.py: the credential types, then the
credentials (made as an admin makes them), then awx_assets.yml. Every job template gets its two credentials, every
workflow node its cloud's credential, every survey is taken; nothing fails. Importing the assets before the
credentials exist (the old order) is what fails, naming the links it could not make."""

from __future__ import annotations

import os
import subprocess

import requests
import yaml

from awx_api import AwxApi
from conftest import VENV_BIN

AWX = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "extensions", "awx")
CREDENTIALS = [("GPU cluster machine", "Machine", {"username": "gpuadmin", "ssh_key_data": "<key>"}),
               ("GPU cluster access", "aiinfra GPU cluster access", {"ssh_public_key": "ssh-ed25519 AAAA"}),
               ("GPU cluster AWS", "Amazon Web Services", {"username": "AKIA", "password": "x"}),
               ("GPU cluster GCP", "Google Compute Engine", {"username": "sa@p.iam.gserviceaccount.com"}),
               ("GPU cluster Azure", "Microsoft Azure Resource Manager", {"subscription": "s"})]


def awx_import(api, name):
    with open(os.path.join(AWX, name)) as handle:
        return subprocess.run([os.path.join(VENV_BIN, "awx"), "--conf.host", api.url, "--conf.token", "token",
                               "-f", "yaml", "import"], stdin=handle, capture_output=True, text=True, timeout=300,
                              check=False)


def make_credentials(api):
    for name, type_name, inputs in CREDENTIALS:
        ctype = api.by_name("credential_types", type_name)
        answer = requests.post(api.url + "/api/v2/credentials/", timeout=10, json={
            "name": name, "organization": api.by_name("organizations", "Default")["id"],
            "credential_type": ctype["id"], "inputs": inputs})
        assert answer.status_code == 201, answer.text


def test_the_documented_order_loads_everything_from_an_empty_awx():
    api = AwxApi(os.path.join(AWX, "project"))
    try:
        first = awx_import(api, "credential_types.yml")
        assert first.returncode == 0, first.stdout + first.stderr
        make_credentials(api)
        proc = awx_import(api, "awx_assets.yml")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not [entry for entry in api.log if entry[2] >= 400], [e for e in api.log if e[2] >= 400]
        with open(os.path.join(AWX, "awx_assets.yml")) as handle:
            assets = yaml.safe_load(handle)
        creds = dict((c["id"], c["name"]) for c in api.objects("credentials"))
        jts = dict((jt["name"], jt) for jt in api.objects("job_templates"))
        assert sorted(jts) == sorted(jt["name"] for jt in assets["job_templates"])
        for jt in jts.values():
            linked = [creds[i] for i in api.links[("job_templates", jt["id"], "credentials")]]
            assert linked == ["GPU cluster machine", "GPU cluster access"], jt["name"]
            assert jt["ask_variables_on_launch"] is False and jt["ask_credential_on_launch"] is True
            assert (("job_templates", jt["id"]) in api.surveys) == jt["survey_enabled"], jt["name"]
        by_cloud = {"aws": "GPU cluster AWS", "gcp": "GPU cluster GCP", "azure": "GPU cluster Azure"}
        workflows = api.objects("workflow_job_templates")
        assert len(workflows) == 3
        for workflow in workflows:
            cloud = yaml.safe_load(workflow["extra_vars"])["gpu_cluster_cloud"]
            nodes = [n for n in api.objects("workflow_job_template_nodes") if n["workflow_job_template"] == workflow["id"]]
            assert sorted(n["identifier"] for n in nodes) == ["configure", "provision", "teardown", "train", "verify"]
            for node in nodes:
                assert [creds[i] for i in api.links[("workflow_job_template_nodes", node["id"], "credentials")]] == [
                    by_cloud[cloud]], (workflow["name"], node["identifier"])
            survey = api.surveys[("workflow_job_templates", workflow["id"])]
            assert "gpu_cluster_cloud" not in [q["variable"] for q in survey["spec"]]
        site = api.surveys[("job_templates", jts["GPU cluster: site"]["id"])]
        (cloud_question,) = [q for q in site["spec"] if q["variable"] == "gpu_cluster_cloud"]
        assert cloud_question["default"] == "none"
    finally:
        api.stop()


def test_assets_before_credentials_fail_naming_the_links():
    api = AwxApi(os.path.join(AWX, "project"))
    try:
        assert awx_import(api, "credential_types.yml").returncode == 0
        proc = awx_import(api, "awx_assets.yml")
    finally:
        api.stop()
    assert proc.returncode != 0
    failed = proc.stdout.count("Could not find matching object") + proc.stderr.count("Could not find matching object")
    # 6 job templates x 2 credentials, 3 workflows x 5 nodes x 1 cloud credential
    assert failed == 6 * 2 + 3 * 5, proc.stdout[-3000:] + proc.stderr[-3000:]
