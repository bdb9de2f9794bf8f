"""The collection as its users get it: the built tarball, installed away from the checkout, and jobs run the
way AWX runs them, without an AWX server.

AWX updates a project as ``project_update.yml`` does (a fresh git clone, then ``ansible-galaxy collection install -r
collections/requirements.yml`` from the project root into the project's cache) and runs a job with ansible-runner
over a private data directory: ``project/`` (the project's playbooks), ``requirements_collections/`` (what the update
installed, first in ``ANSIBLE_COLLECTIONS_PATHS``), ``inventory/hosts``, ``env/extravars`` (survey answers, as strings, and
the extra vars credentials inject), ``env/envvars`` (the variables credentials inject), ``env/ssh_key`` (the
Machine credential's private key, which ansible-runner loads into an ssh-agent). No ``ansible.cfg`` of
ours, default forks. The project here is the collection's own example, ``extensions/awx/project``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import yaml

from conftest import ROOT, VENV_BIN

AWX = os.path.join(ROOT, "extensions", "awx")


def clean_env(**extra):
    """The environment of a user's shell: no ANSIBLE_* setting of the checkout's."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.pop("GPU_CLUSTER_NAME", None)
    env.update(extra)
    return env


def build_tarball(dest):
    """``ansible-galaxy collection build`` of the checkout into ``dest``; returns the tarball's path."""
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                    str(dest), ROOT], check=True, capture_output=True, text=True, env=clean_env())
    found = glob.glob(os.path.join(str(dest), "aiinfra-gpu_cluster-*.tar.gz"))
    assert len(found) == 1, found
    return found[0]


def install(requirement_args, collections_dir, cwd):
    """``ansible-galaxy collection install -p DIR`` from ``cwd``, away from the checkout's ansible.cfg."""
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--force", "-p",
                           str(collections_dir)] + list(requirement_args), cwd=str(cwd), env=clean_env(),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = os.path.join(str(collections_dir), "ansible_collections", "aiinfra", "gpu_cluster")
    assert os.path.isfile(os.path.join(path, "MANIFEST.json")), proc.stdout
    return path


def survey(job_template):
    """The survey spec of a job template in extensions/awx/awx_assets.yml."""
    with open(os.path.join(AWX, "awx_assets.yml")) as handle:
        assets = yaml.safe_load(handle)
    found = [jt for jt in assets["job_templates"] if jt["name"] == job_template]
    assert len(found) == 1, job_template
    return found[0]["related"]["survey_spec"]["spec"]


def survey_answers(job_template, **answers):
    """Extra vars as the survey sends them: every answer a string, only the survey's own variables."""
    spec = dict((q["variable"], q) for q in survey(job_template))
    unknown = set(answers) - set(spec)
    assert not unknown, "not in the survey of %s: %s" % (job_template, sorted(unknown))
    for name, question in spec.items():
        if question.get("required") and name not in answers:
            answers[name] = question["default"]  # a required question without a default must be answered
        if question["type"] == "multiplechoice" and name in answers:
            assert str(answers[name]) in question["choices"].split("\n"), (name, answers[name], question["choices"])
    return dict((k, str(v)) for k, v in answers.items())


def git(*args, cwd=None):
    proc = subprocess.run(["git", "-c", "user.name=aiinfra test", "-c", "user.email=test@example.invalid",
                           "-c", "init.defaultBranch=main"] + list(args), cwd=str(cwd) if cwd else None,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def project_repository(base, tarball):
    """The project repository an admin makes, as the README says: extensions/awx/project/ with the built tarball in
    its collections/ (the file collections/requirements.yml names), committed to git."""
    repo = base / "project-repo"
    shutil.copytree(os.path.join(AWX, "project"), str(repo))
    shutil.copy(tarball, str(repo / "collections" / os.path.basename(tarball)))
    git("init", "-q", str(repo))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "GPU cluster project", cwd=repo)
    return repo


def project_update(base, repo):
    """AWX's project update (awx/playbooks/project_update.yml): a fresh clone of the project into
    ``projects/<local_path>``, then ``ansible-galaxy collection install -r <project_path>/collections/requirements.yml``
    with the project root as the working directory (``module_defaults: command: chdir: project_path``) and
    ``ANSIBLE_COLLECTIONS_PATHS`` the project's stage directory (``.__awx_cache/<local_path>/stage/
    requirements_collections``). Returns ``(project_path, requirements_collections, galaxy output)``."""
    local_path = "_8__aiinfra_gpu_cluster"
    projects = base / "projects"
    projects.mkdir()
    project_path = projects / local_path
    git("clone", "-q", "file://%s" % repo, str(project_path))
    stage = projects / ".__awx_cache" / local_path / "stage"
    collections = stage / "requirements_collections"
    (stage / "tmp").mkdir(parents=True)
    # AWX sets ANSIBLE_COLLECTIONS_PATHS; ansible-core 2.19 reads only the singular name, so both are set here
    env = clean_env(ANSIBLE_COLLECTIONS_PATHS=str(collections), ANSIBLE_COLLECTIONS_PATH=str(collections),
                    ANSIBLE_ROLES_PATH=str(stage / "requirements_roles"), ANSIBLE_LOCAL_TEMP=str(stage / "tmp"))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "-r",
                           str(project_path / "collections" / "requirements.yml")], cwd=str(project_path), env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project_path, collections, proc.stdout + proc.stderr


def private_data_dir(base, tarball, extravars, envvars, ssh_key_file, inventory_vars=None):
    """A private data directory laid out as AWX lays it out after a project update: the project (a fresh clone),
    the collections the update installed beside it (``requirements_collections``, first in
    ``ANSIBLE_COLLECTIONS_PATHS`` as AWX's job environment has it), inventory, extra vars, env vars, the key."""
    pdd = base / "awx"
    project_path, collections, _output = project_update(base, project_repository(base, tarball))
    shutil.copytree(str(project_path), str(pdd / "project"), ignore=shutil.ignore_patterns(".git"))
    shutil.copytree(str(collections), str(pdd / "requirements_collections"))
    installed = pdd / "requirements_collections" / "ansible_collections" / "aiinfra" / "gpu_cluster"
    assert (installed / "MANIFEST.json").is_file(), sorted(os.listdir(str(pdd / "requirements_collections")))
    paths = os.pathsep.join([str(pdd / "requirements_collections"), "~/.ansible/collections",
                             "/usr/share/ansible/collections"])
    envvars = dict(envvars, ANSIBLE_COLLECTIONS_PATHS=paths, ANSIBLE_COLLECTIONS_PATH=paths)
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts").write_text(json.dumps({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "vars": inventory_vars or {}}}))
    (pdd / "env").mkdir()
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    (pdd / "env" / "envvars").write_text(json.dumps(envvars))
    with open(ssh_key_file) as handle:
        (pdd / "env" / "ssh_key").write_text(handle.read())
    return pdd


def run_job(pdd, playbook, ident, monkeypatch, extravars=None):
    """One job through ansible-runner's Python API (as AWX's receptor worker runs it); returns
    (result, events). ``extravars`` replaces env/extravars for this job (e.g. the teardown template's survey)."""
    import ansible_runner

    # no setting of the checkout's reaches the job (tests/run.sh exports ANSIBLE_CONFIG)
    for name in [k for k in os.environ if k.startswith("ANSIBLE_")] + ["GPU_CLUSTER_NAME"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    if extravars is not None:
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    result = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, ident=ident, quiet=True)
    events = list(result.events)
    return result, events


def job_output(events, tail=8000):
    return "".join(e.get("stdout", "") + "\n" for e in events)[-tail:]


def play_stats(events):
    """Per play (in order): the number of ok / changed / failed (not ignored) / unreachable task results."""
    plays = []
    for event in events:
        data = event.get("event_data", {})
        if event["event"] == "playbook_on_play_start":
            plays.append({"play": data.get("play"), "ok": 0, "changed": 0, "failed": 0, "unreachable": 0})
        elif event["event"] == "runner_on_ok" and plays:
            plays[-1]["ok"] += 1
            plays[-1]["changed"] += bool(data.get("res", {}).get("changed"))
        elif event["event"] == "runner_on_failed" and plays and not data.get("ignore_errors"):
            plays[-1]["failed"] += 1
        elif event["event"] == "runner_on_unreachable" and plays and not data.get("ignore_unreachable"):
            plays[-1]["unreachable"] += 1
    return plays


def final_stats(events):
    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1, [e["event"] for e in events][-5:]
    return stats[0]["event_data"]
