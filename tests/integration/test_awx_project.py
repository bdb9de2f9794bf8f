"""AWX as AWX runs it: the project update of awx/playbooks/project_update.yml (a fresh git clone of the project
directory the README documents, ``ansible-galaxy collection install -r collections/requirements.yml`` from the
project root), then a job over AWX's private data directory whose cloud credentials are what AWX's built-in
Amazon Web Services credential and our "aiinfra cloud endpoints" credential type inject (no extra variables: the
job template's survey answers only). The cloud is moto behind tests/integration/ec2_proxy.py."""

from __future__ import annotations

import os
import re

import pytest
import yaml

import awx_injectors
import awx_job
from conftest import KEY, unique_name
from ec2_proxy import Ec2Proxy, MotoServer


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    return awx_job.build_tarball(tmp_path_factory.mktemp("dist"))


def test_project_update_installs_the_collection_from_the_project_root(tmp_path, tarball):
    repo = awx_job.project_repository(tmp_path, tarball)
    project_path, collections, output = awx_job.project_update(tmp_path, repo)
    installed = collections / "ansible_collections" / "aiinfra" / "gpu_cluster"
    assert (installed / "MANIFEST.json").is_file(), output
    assert "aiinfra.gpu_cluster:0.1.0 was installed successfully" in output, output
    # nothing was installed into the project itself (AWX copies the project and the cache separately)
    assert not (project_path / "collections" / "ansible_collections").exists()
    # every job template's playbook is in the clone
    with open(os.path.join(awx_job.AWX, "awx_assets.yml")) as handle:
        assets = yaml.safe_load(handle)
    for jt in assets["job_templates"]:
        assert (project_path / jt["playbook"]).is_file(), jt["playbook"]


def test_a_job_with_the_credentials_awx_injects(tmp_path, tarball, monkeypatch):
    moto = MotoServer()
    proxy = Ec2Proxy(moto.url)
    seen = []
    handle = proxy.handle

    def spy(path, headers, body):  # which access key signed each EC2 call
        auth = dict((k.lower(), v) for k, v in headers.items()).get("authorization", "")
        match = re.search(r"Credential=([^/]+)/", auth)
        seen.append(match.group(1) if match else None)
        return handle(path, headers, body)
    proxy.handle = spy
    try:
        with open(os.path.join(awx_job.AWX, "credential_types.yml")) as fh:
            types = dict((t["name"], t) for t in yaml.safe_load(fh)["credential_types"])
        name = unique_name("awxp")
        answers = awx_job.survey_answers("GPU cluster: teardown", gpu_cluster_name=name, gpu_cluster_cloud="aws")
        env = {}
        awx_injectors.aws({"username": "AKIAAWXINJECTED00001", "password": "awx-secret-not-printed",
                           "security_token": "awx-session-token"}, env)
        awx_injectors.custom(types["aiinfra cloud endpoints"], {"endpoint_url": proxy.url}, env)
        pdd = awx_job.private_data_dir(tmp_path, tarball, answers, env, KEY)
        result, events = awx_job.run_job(pdd, "teardown.yml", "teardown", monkeypatch)
    finally:
        proxy.stop()
        moto.stop()
    output = awx_job.job_output(events, tail=10 ** 6)
    assert result.rc == 0 and result.status == "successful", output[-6000:]
    assert proxy.total_calls() > 0 and set(seen) == {"AKIAAWXINJECTED00001"}, seen
    assert "awx-secret-not-printed" not in output and "awx-session-token" not in output
