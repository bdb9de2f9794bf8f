"""The collection as users get it: built, installed elsewhere, documented, and bring-your-own nodes."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

import awx_job
from conftest import KEY, ROOT, VENV_BIN, cluster_leftovers, run_playbook

PUBKEY = open(KEY + ".pub").read().strip()


def test_built_tarball_installs_and_works_outside_the_checkout(tmp_path, cluster_name):
    out = tmp_path / "dist"
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out), ROOT],
                   check=True, capture_output=True, text=True)
    tarball = glob.glob(str(out / "aiinfra-gpu_cluster-*.tar.gz"))
    assert len(tarball) == 1
    names = tarfile.open(tarball[0]).getnames()
    assert "plugins/modules/instance.py" in names and "meta/runtime.yml" in names
    assert not [n for n in names if n.startswith((".venv", ".collections", ".ssh", "runs/", "dist/")) or "id_ed25519" in n]
    # what users need, and nothing that only means something in the checkout
    for needed in ("meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
                   "roles/gpu_cluster/defaults/main.yml", "playbooks/site.yml", "extensions/awx/awx_assets.yml",
                   "extensions/awx/project/collections/requirements.yml", "README.md", "COPYING"):
        assert needed in names, needed
    dev_only = ("Makefile", "ansible.cfg", "site.yml", "requirements.txt", "requirements-dev.txt", "pytest.ini",
                ".ansible-lint", "benchmarks/", "tests/", "inventories/", ".ci/")
    assert not [n for n in names if n.startswith(dev_only) or "/molecule/" in n], names

    colls = tmp_path / "collections"
    subprocess.run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", str(colls),
                    tarball[0]], check=True, capture_output=True, text=True, cwd=str(tmp_path))
    assert os.path.exists(str(colls / "ansible_collections/aiinfra/gpu_cluster/plugins/modules/instance.py"))
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "play.yml").write_text("""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/aiinfra.gpu_cluster.cloud:
      cloud: local
      cluster: %s
  tasks:
    - aiinfra.gpu_cluster.instance:
        count: 1
        ssh_public_key: "%s"
      register: made
    - aiinfra.gpu_cluster.instance_info:
      register: info
    - ansible.builtin.assert:
        that:
          - made.nodes | length == 1
          - info.nodes[0].id == made.nodes[0].id
    - aiinfra.gpu_cluster.instance:
        state: absent
""" % (cluster_name, PUBKEY))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(colls), PATH=VENV_BIN + ":" + os.environ["PATH"],
               ANSIBLE_LOCALHOST_WARNING="false")
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"), "play.yml"],
                          cwd=str(work), env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
    assert cluster_leftovers(cluster_name) == []

    # ansible-doc renders every module and the inventory plugin from the installed collection
    for plugin_type, name in (("module", "instance"), ("module", "instance_info"), ("inventory", "cluster")):
        doc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", plugin_type, "--json",
                              "aiinfra.gpu_cluster." + name], env=env, capture_output=True, text=True, check=True)
        parsed = json.loads(doc.stdout)["aiinfra.gpu_cluster." + name]["doc"]
        assert "cluster" in parsed["options"] and parsed["short_description"]


def test_installed_playbooks_need_no_inventory_of_ours(tmp_path, cluster_name, request):
    """aiinfra.gpu_cluster.provision / .nodes / .teardown from the installed tarball, in an empty directory, no
    inventory, no ansible.cfg: the defaults travel with the collection; a missing key pair is made and said where."""
    colls = tmp_path / "collections"
    awx_job.install([awx_job.build_tarball(tmp_path / "dist")], colls, cwd=tmp_path)
    # a short HOME: ssh's ControlPath (~/.ansible/cp/...) must fit a Unix socket path (108 bytes), which a
    # pytest-xdist tmp_path does not leave room for
    home = pathlib.Path(tempfile.mkdtemp(prefix="aih-"))
    request.addfinalizer(lambda: shutil.rmtree(str(home), ignore_errors=True))
    work = tmp_path / "work"
    work.mkdir()
    env = awx_job.clean_env(HOME=str(home), ANSIBLE_COLLECTIONS_PATH=str(colls))

    def playbook(*args):
        return subprocess.run([os.path.join(VENV_BIN, "ansible-playbook")] + list(args), cwd=str(work), env=env,
                              capture_output=True, text=True, check=False)

    key = home / ".ssh" / "aiinfra_gpu_cluster_ed25519"
    # no key pair, and none may be made: the error names the variables to set; nothing is created
    proc = playbook("aiinfra.gpu_cluster.provision", "-e", "gpu_cluster_name=" + cluster_name,
                    "-e", "gpu_cluster_ssh_key_create=false")
    out = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    assert "%s.pub does not exist" % key in out and "Set gpu_cluster_ssh_public_key" in out, out[-3000:]
    assert "gpu_cluster_ssh_private_key_file" in out and "gpu_cluster_ssh_key_create: true" in out
    assert cluster_leftovers(cluster_name) == []

    # the defaults: local cloud, a key pair made in ~/.ssh (and said where); one node here to keep it short
    proc = playbook("aiinfra.gpu_cluster.provision", "-e", "gpu_cluster_name=" + cluster_name, "-e", "gpu_cluster_size=1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Made an SSH key pair for the cluster's nodes: %s (private) and %s.pub" % (key, key) in proc.stdout
    assert key.exists() and (home / ".ssh" / "aiinfra_gpu_cluster_ed25519.pub").exists()
    assert len(cluster_leftovers(cluster_name)) == 2                  # the node and its network

    # a later invocation finds the nodes (aiinfra.gpu_cluster.nodes) and logs in with that key, with sudo
    proc = playbook("aiinfra.gpu_cluster.nodes", "aiinfra.gpu_cluster.nodes_answer",
                    "-e", "gpu_cluster_name=" + cluster_name)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "rank 0: %s-0 (" % cluster_name in proc.stdout and "Made an SSH key pair" not in proc.stdout
    # with no ansible.cfg of ours the node's host key was recorded at first contact in the cluster's own file
    known = home / ".cache" / "aiinfra" / "known_hosts" / ("local-%s" % cluster_name)
    assert known.exists() and len(known.read_text().splitlines()) == 1, proc.stdout[-2000:]

    proc = playbook("aiinfra.gpu_cluster.teardown", "-e", "gpu_cluster_name=" + cluster_name)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert cluster_leftovers(cluster_name) == []

    # the new role documents the settings
    doc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "role", "--json", "aiinfra.gpu_cluster.gpu_cluster"],
                         env=env, capture_output=True, text=True, check=True)
    options = json.loads(doc.stdout)["aiinfra.gpu_cluster.gpu_cluster"]["entry_points"]["main"]["options"]
    assert {"gpu_cluster_cloud", "gpu_cluster_ssh_public_key", "gpu_cluster_cloud_defaults"} <= set(options)


def test_bring_your_own_nodes_skips_provisioning(tmp_path, cluster_name):
    # nodes that exist already (made here by the module, standing in for on-prem servers)
    result = tmp_path / "made.json"
    run_playbook("tests/integration/playbooks/instance.yml",
                 extra_vars=dict(cluster=cluster_name, count=2, ssh_public_key=PUBKEY, result_file=str(result)))
    made = json.loads(result.read_text())
    assert "nodes" in made, made                                  # the module's error, when it failed
    nodes = made["nodes"]
    # inventories/byo with our servers in it, listed in reverse rank order
    inv = tmp_path / "byo"
    shutil.copytree(os.path.join(ROOT, "inventories", "byo"), str(inv))
    hosts = dict(("server%d" % (9 - n["rank"]), {"ansible_host": n["ssh_host"]}) for n in reversed(nodes))
    # bring-your-own servers keep ssh's strict host key checking: their keys are known beforehand (here, scanned)
    known = tmp_path / "known_hosts"
    known.write_text(subprocess.run(["ssh-keyscan", "-T", "5"] + [n["ssh_host"] for n in nodes], capture_output=True,
                                    text=True, check=True).stdout)
    (inv / "hosts.yml").write_text(json.dumps({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "vars": {"gpu_cluster_name": "onprem-" + cluster_name},
        "children": {"gpu_nodes": {"hosts": hosts, "vars": {
            "ansible_ssh_private_key_file": KEY, "ansible_user": nodes[0]["ssh_user"],
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % known}}}}}))
    proc = run_playbook("playbooks/provision.yml", inventory=str(inv))
    proc = run_playbook("playbooks/nodes_answer.yml", inventory=str(inv))
    # ranks follow the inventory's order; both servers answer
    assert "rank 0: %s (%s)" % (nodes[1]["name"], nodes[1]["ssh_host"]) in proc.stdout
    assert "rank 1: %s (%s)" % (nodes[0]["name"], nodes[0]["ssh_host"]) in proc.stdout
    # nothing was provisioned for the bring-your-own cluster
    assert cluster_leftovers("onprem-" + cluster_name) == []

    empty = tmp_path / "empty.yml"
    empty.write_text(json.dumps({"all": {"hosts": {"localhost": {"ansible_connection": "local"}},
                                         "vars": {"gpu_cluster_cloud": "none", "gpu_cluster_name": "x"}}}))
    proc = run_playbook("playbooks/provision.yml", inventory=str(empty), check=False)
    assert proc.returncode != 0 and "gpu_nodes group is empty" in proc.stdout
