"""extensions/awx: the objects an AWX admin loads must fit together and fit the playbooks they run."""

from __future__ import annotations

import os

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


def test_the_credential_type_file_is_the_one_in_the_assets():
    own = load(AWX, "credential_type.yml")
    (imported,) = ASSETS["credential_types"]
    for field in ("name", "kind", "inputs", "injectors"):
        assert own[field] == imported[field], field
    # what it injects is what the collection reads
    assert set(own["injectors"]["extra_vars"]) == {"gpu_cluster_ssh_public_key"}
    assert "gpu_cluster_ssh_public_key" in role_options("gpu_cluster")
    assert set(own["injectors"]["env"]) == {"GPU_CLUSTER_ADMIN_CIDRS"}
    with open(os.path.join(ROOT, "roles", "gpu_cluster", "defaults", "main.yml")) as handle:
        assert "'GPU_CLUSTER_ADMIN_CIDRS'" in handle.read()
    fields = [f["id"] for f in own["inputs"]["fields"]]
    for template in list(own["injectors"]["extra_vars"].values()) + list(own["injectors"]["env"].values()):
        assert template.strip("{} ") in fields


def test_job_templates_run_the_project_playbooks_with_known_survey_variables():
    project = os.path.join(AWX, "project")
    # never torchrun_*: survey answers are extra vars, which would reach verify.yml's all-reduce too
    known = set(role_options("gpu_cluster")) | {"gpu_cluster_train_script", "gpu_cluster_train_script_args"}
    names = set()
    for jt in ASSETS["job_templates"]:
        names.add(jt["name"])
        assert os.path.isfile(os.path.join(project, jt["playbook"])), jt["playbook"]
        assert jt["project"] == ASSETS["projects"][0]["natural_key"]
        assert jt["inventory"] == ASSETS["inventory"][0]["natural_key"]
        kinds = [c["credential_type"]["name"] for c in jt["related"]["credentials"]]
        assert kinds == ["Machine", "aiinfra GPU cluster access"], jt["name"]
        survey = jt["related"].get("survey_spec")
        assert bool(survey) == jt["survey_enabled"], jt["name"]
        for question in (survey or {}).get("spec", []):
            assert question["variable"] in known, question["variable"]
            assert question["type"] in ("text", "textarea", "integer", "multiplechoice", "password", "float")
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"].split("\n")
    assert {"GPU cluster: site", "GPU cluster: teardown"} <= names
    with open(os.path.join(ROOT, "playbooks", "train.yml")) as handle:
        train = handle.read()
    assert "gpu_cluster_train_script |" in train and "gpu_cluster_train_script_args |" in train


def test_the_workflow_runs_the_steps_in_order_and_always_tears_down():
    (workflow,) = ASSETS["workflow_job_templates"]
    nodes = dict((n["identifier"], n) for n in workflow["related"]["workflow_nodes"])
    jts = dict((jt["natural_key"]["name"], jt) for jt in ASSETS["job_templates"])
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
    # the workflow asks what the site template asks
    assert workflow["related"]["survey_spec"] == jts["GPU cluster: site"]["related"]["survey_spec"]
    # each step after provision finds the nodes first (the steps are separate jobs)
    for step in ("configure", "verify", "train"):
        playbook = load(AWX, "project", jts[nodes[step]["unified_job_template"]["name"]]["playbook"])
        assert [p["ansible.builtin.import_playbook"] for p in playbook] == [
            "aiinfra.gpu_cluster.nodes", "aiinfra.gpu_cluster." + step]
