"""extensions/awx: the objects an AWX admin loads must fit together and fit the playbooks they run."""

from __future__ import annotations

import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(ROOT, "extensions", "awx")


def load(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle)


ASSETS = load(AWX, "awx_assets.yml")
ORG = {"name": "Default", "type": "organization"}


def role_options(role, entry="main"):
    return load(ROOT, "roles", role, "meta", "argument_specs.yml")["argument_specs"][entry]["options"]


def test_every_object_has_the_natural_key_awx_import_matches_on():
    keys = {"credential_types": ("name", "kind"), "execution_environments": ("name",),
            "projects": ("organization", "name"), "inventory": ("organization", "name"),
            "job_templates": ("organization", "name"), "workflow_job_templates": ("organization", "name")}
    assert set(ASSETS) == set(keys)
    for kind, fields in keys.items():
        for asset in ASSETS[kind]:
            key = asset["natural_key"]
            for field in fields:
                assert key[field] == (ORG if field == "organization" else asset[field]), (kind, asset["name"], field)


def test_the_credential_types_file_is_the_one_in_the_assets():
    own = load(AWX, "credential_types.yml")["credential_types"]
    assert [t["name"] for t in own] == [t["name"] for t in ASSETS["credential_types"]]
    for mine, imported in zip(own, ASSETS["credential_types"]):
        for field in ("name", "kind", "inputs", "injectors", "natural_key"):
            assert mine[field] == imported[field], (mine["name"], field)
    types = dict((t["name"], t) for t in own)
    access, endpoints = types["aiinfra GPU cluster access"], types["aiinfra cloud endpoints"]
    # what they inject is what the collection reads
    assert set(access["injectors"]["extra_vars"]) == {"gpu_cluster_ssh_public_key"}
    assert "gpu_cluster_ssh_public_key" in role_options("gpu_cluster")
    assert set(access["injectors"]["env"]) == {"GPU_CLUSTER_ADMIN_CIDRS"}
    assert set(endpoints["injectors"]) == {"env"}
    assert set(endpoints["injectors"]["env"]) == {"GPU_CLUSTER_ENDPOINT_URL", "AZURE_AUTHORITY_HOST"}
    with open(os.path.join(ROOT, "roles", "gpu_cluster", "defaults", "main.yml")) as handle:
        defaults = handle.read()
    assert "'GPU_CLUSTER_ADMIN_CIDRS'" in defaults and "'GPU_CLUSTER_ENDPOINT_URL'" in defaults
    with open(os.path.join(ROOT, "plugins", "module_utils", "_cloud", "azure", "provider.py")) as handle:
        assert 'environ.get("AZURE_AUTHORITY_HOST")' in handle.read()
    for kind in types.values():
        fields = [f["id"] for f in kind["inputs"]["fields"]]
        injected = list(kind["injectors"].get("extra_vars", {}).values()) + list(kind["injectors"]["env"].values())
        for template in injected:
            assert template.strip("{} ") in fields


def test_job_templates_take_surveys_only_and_run_the_project_playbooks():
    project = os.path.join(AWX, "project")
    # never torchrun_*: survey answers are extra vars, which would reach verify.yml's all-reduce too
    known = set(role_options("gpu_cluster")) | {"gpu_cluster_train_script", "gpu_cluster_train_script_args"}
    names = set()
    for jt in ASSETS["job_templates"]:
        names.add(jt["name"])
        assert jt["ask_variables_on_launch"] is False, jt["name"]
        assert not [k for k in jt if k.startswith("ask_") and k != "ask_credential_on_launch" and jt[k]], jt["name"]
        assert jt["ask_credential_on_launch"] is True  # the cloud's credential: at launch or on a workflow node
        assert os.path.isfile(os.path.join(project, jt["playbook"])), jt["playbook"]
        assert jt["project"] == ASSETS["projects"][0]["natural_key"]
        assert jt["inventory"] == ASSETS["inventory"][0]["natural_key"]
        kinds = [c["credential_type"]["name"] for c in jt["related"]["credentials"]]
        assert kinds == ["Machine", "aiinfra GPU cluster access"], jt["name"]
        survey = jt["related"].get("survey_spec")
        assert bool(survey) == jt["survey_enabled"], jt["name"]
        for question in (survey or {}).get("spec", []):
            assert question["variable"] in known, question["variable"]
            assert not re.search("endpoint|authority|ssh_common|docker", question["variable"]), question["variable"]
            assert question["type"] in ("text", "textarea", "integer", "multiplechoice", "password", "float")
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"].split("\n")
            if question["variable"] == "gpu_cluster_cloud":
                # the clouds an execution environment can reach (local needs podman); none costs nothing
                assert question["choices"].split("\n") == ["none", "aws", "gcp", "azure"]
                assert question["default"] == "none"
    assert {"GPU cluster: site", "GPU cluster: teardown"} <= names
    # train.yml's plays take the job from the survey's variables (playbooks/vars/train_job.yml, their vars_files)
    with open(os.path.join(ROOT, "playbooks", "train.yml")) as handle:
        assert handle.read().count("- vars/train_job.yml") == 2
    with open(os.path.join(ROOT, "playbooks", "vars", "train_job.yml")) as handle:
        train = handle.read()
    assert "gpu_cluster_train_script |" in train and "gpu_cluster_train_script_args |" in train


BUILT_IN = {"aws": "Amazon Web Services", "gcp": "Google Compute Engine", "azure": "Microsoft Azure Resource Manager"}


def test_one_workflow_per_cloud_its_nodes_carry_the_clouds_credential():
    workflows = ASSETS["workflow_job_templates"]
    clouds = [yaml.safe_load(w["extra_vars"])["gpu_cluster_cloud"] for w in workflows]
    assert clouds == ["aws", "gcp", "azure"]
    jts = dict((jt["natural_key"]["name"], jt) for jt in ASSETS["job_templates"])
    for cloud, workflow in zip(clouds, workflows):
        assert workflow["ask_variables_on_launch"] is False
        assert set(yaml.safe_load(workflow["extra_vars"])) == {"gpu_cluster_cloud"}
        questions = [q["variable"] for q in workflow["related"]["survey_spec"]["spec"]]
        assert "gpu_cluster_cloud" not in questions
        assert questions == [q["variable"] for q in jts["GPU cluster: site"]["related"]["survey_spec"]["spec"]
                             if q["variable"] != "gpu_cluster_cloud"]
        for node in workflow["related"]["workflow_nodes"]:
            (credential,) = node["related"]["credentials"]
            assert credential["credential_type"] == {"name": BUILT_IN[cloud], "kind": "cloud", "type": "credential_type"}
            assert credential["type"] == "credential" and credential["organization"] == ORG
            assert jts[node["unified_job_template"]["name"]]["ask_credential_on_launch"] is True


def test_each_workflow_runs_the_steps_in_order_and_always_tears_down():
    jts = dict((jt["natural_key"]["name"], jt) for jt in ASSETS["job_templates"])
    for workflow in ASSETS["workflow_job_templates"]:
        nodes = dict((n["identifier"], n) for n in workflow["related"]["workflow_nodes"])
        for identifier, node in nodes.items():
            assert node["natural_key"] == {"workflow_job_template": workflow["natural_key"], "identifier": identifier,
                                           "type": "workflow_job_template_node"}
            assert node["unified_job_template"]["name"] in jts
            for edge in ("success_nodes", "failure_nodes", "always_nodes"):
                for target in node["related"][edge]:
                    assert target["identifier"] in nodes and target["workflow_job_template"] == workflow["natural_key"]

        def next_on(identifier, edge):
            return [t["identifier"] for t in nodes[identifier]["related"][edge]]

        chain, step = [], "provision"
        while step:
            chain.append(step)
            following = next_on(step, "success_nodes")
            step = following[0] if following else None
        assert chain == ["provision", "configure", "verify", "train"]
        for step in ("provision", "configure", "verify"):
            assert next_on(step, "failure_nodes") == ["teardown"], step
        assert next_on("train", "always_nodes") == ["teardown"]
        # each step after provision finds the nodes first (the steps are separate jobs)
        for step in ("configure", "verify", "train"):
            playbook = load(AWX, "project", jts[nodes[step]["unified_job_template"]["name"]]["playbook"])
            assert [p["ansible.builtin.import_playbook"] for p in playbook] == [
                "aiinfra.gpu_cluster.nodes", "aiinfra.gpu_cluster." + step]


def test_the_project_requirements_name_the_tarball_from_the_project_root():
    """AWX runs ansible-galaxy with the project root as the working directory."""
    (entry,) = load(AWX, "project", "collections", "requirements.yml")["collections"]
    assert entry["type"] == "file" and entry["name"].startswith("collections/aiinfra-gpu_cluster-")
