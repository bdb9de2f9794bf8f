"""The README's "Reuse a role with Molecule", as a user does it: a project outside the checkout whose scenario
installs the built collection tarball (Molecule's galaxy dependency, requirements.yml), creates its node with
aiinfra.gpu_cluster.molecule_create, converges a role of the installed collection, checks idempotence, verifies and
destroys with aiinfra.gpu_cluster.molecule_destroy. Nothing of the checkout is on the collections path."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest

from conftest import ROOT, VENV_BIN, cluster_leftovers, destroy_cluster, unique_name

ANSI = re.compile(r"\x1b\[[0-9;]*m")

MOLECULE_YML = """\
dependency:
  name: galaxy
  options:
    requirements-file: requirements.yml
driver:
  name: default
  options:
    managed: true
platforms:
  - name: node-1
provisioner:
  name: ansible
  playbooks:
    create: create.yml
    destroy: destroy.yml
  config_options:
    defaults:
      host_key_checking: false
  inventory:
    group_vars:
      all:
        ansible_python_interpreter: /usr/bin/python3
verifier:
  name: ansible
"""

PLAYS = {
    "create.yml": "- name: Create\n  ansible.builtin.import_playbook: aiinfra.gpu_cluster.molecule_create\n",
    "destroy.yml": "- name: Destroy\n  ansible.builtin.import_playbook: aiinfra.gpu_cluster.molecule_destroy\n",
    "converge.yml": textwrap.dedent("""\
        - name: Converge
          hosts: all
          gather_facts: false
          roles:
            - role: aiinfra.gpu_cluster.preflight
        """),
    "verify.yml": textwrap.dedent("""\
        - name: Verify
          hosts: all
          gather_facts: false
          tasks:
            - name: Learn the node again
              ansible.builtin.include_role:
                name: aiinfra.gpu_cluster.preflight
            - name: The role's facts
              ansible.builtin.assert:
                that:
                  - preflight_os.key == 'debian-12' and preflight_os.supported
                  - not preflight_gpu.present
        """),
}


@pytest.mark.slow
def test_a_users_scenario_tests_a_role_of_the_installed_collection(tmp_path):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_")))
    env.update(PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), NO_COLOR="1", PY_COLORS="0")
    dist = tmp_path / "dist"
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), ROOT],
                   cwd=str(tmp_path), env=env, check=True, capture_output=True)
    tarball = next(dist.glob("aiinfra-gpu_cluster-*.tar.gz"))

    project = tmp_path / "my-project"
    scenario = project / "molecule" / "default"
    scenario.mkdir(parents=True)
    (project / "requirements.yml").write_text("collections:\n  - name: %s\n    type: file\n" % tarball)
    (scenario / "molecule.yml").write_text(MOLECULE_YML)
    for name, text in PLAYS.items():
        (scenario / name).write_text(text)

    cluster = unique_name("mol-user")
    collections = tmp_path / "collections"
    key = tmp_path / "keys" / "id_ed25519"  # does not exist: molecule_create makes it
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), AIINFRA_MOLECULE_CLUSTER=cluster,
               AIINFRA_MOLECULE_SSH_KEY=str(key), MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"))
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test"], cwd=str(project), env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900, check=False)
        output = ANSI.sub("", proc.stdout)
        leftovers = cluster_leftovers(cluster)
    finally:
        destroy_cluster(cluster)
    tail = output[-6000:]
    assert proc.returncode == 0, tail
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(r"default > %s\]? Executed: Successful" % step, output), "step %s:\n%s" % (step, tail)
    # Molecule's galaxy dependency installs collections and roles; with no roles file it notes the roles part missing
    assert re.search(r"default > dependency\]? Executed: (Successful|Missing roles requirements file)", output), tail
    # the role ran from the collection the dependency step installed from the tarball: the checkout is on no
    # collections path of this run, and the default paths hold no other copy
    installed = collections / "ansible_collections" / "aiinfra" / "gpu_cluster"
    assert (installed / "MANIFEST.json").is_file() and not (installed / "galaxy.yml").exists()
    for default in ("~/.ansible/collections", "/usr/share/ansible/collections"):
        assert not os.path.exists(os.path.join(os.path.expanduser(default), "ansible_collections", "aiinfra", "gpu_cluster"))
    assert key.is_file() and (tmp_path / "keys" / "id_ed25519.pub").is_file()
    assert leftovers == [], leftovers
