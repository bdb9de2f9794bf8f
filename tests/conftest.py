"""Shared test helpers.

- The collection is importable as ``ansible_collections.aiinfra.gpu_cluster`` (``make setup``
  links the checkout under ``.collections``).
- ``run_playbook`` runs ansible-playbook from the checkout with the project's ansible.cfg.
- ``local_cluster`` makes local nodes under a cluster name of the test's own and removes
  everything carrying that name afterwards, even when the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
VENV_BIN = os.path.dirname(sys.executable)
KEY = os.path.join(ROOT, ".ssh", "id_ed25519")

if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


def unique_name(prefix="t"):
    """A cluster id of this test's own: prefix + 6 random hex characters."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def local_name(prefix):
    """A local cluster's name for a test: unique_name(prefix), after AIINFRA_TEST_CLUSTER_PREFIX when that is set
    (several people or sessions on one host can tell their clusters apart)."""
    return os.environ.get("AIINFRA_TEST_CLUSTER_PREFIX", "") + unique_name(prefix)


def ansible_env(extra=None):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("GPU_CLUSTER_NAME", None)
    env.update(extra or {})
    return env


def run_playbook(playbook, *args, extra_vars=None, inventory=None, env=None, timeout=1800, check=True):
    """Run ansible-playbook from the checkout; returns CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), playbook]
    if inventory:
        cmd += ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("ansible-playbook %s failed (rc=%s):\n%s" % (playbook, proc.returncode, proc.stdout[-6000:]))
    return proc


def task_results(output):
    """{task name: localhost's result} from ansible-playbook's output with the ansible.posix.json callback."""
    start = output.find("{\n")
    if start < 0:
        return {}
    doc, _end = json.JSONDecoder().raw_decode(output[start:])
    results = {}
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            if "localhost" in task.get("hosts", {}):
                results[task["task"]["name"]] = task["hosts"]["localhost"]
    return results


def events(text, event):
    """The JSON event lines (``{"event": ...}``) of one kind in a job's log, e.g. the example job's steps."""
    found = []
    for line in text.splitlines():
        start = line.find("{")
        if start >= 0:
            try:
                obj = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("event") == event:
                found.append(obj)
    return found


def plain(value):
    """ansible-inventory marks values from plugins as unsafe: {"__ansible_unsafe": value}."""
    return value.get("__ansible_unsafe") if isinstance(value, dict) else value


def podman(*args, check=True):
    return subprocess.run(["podman"] + list(args), capture_output=True, text=True, check=check,
                          env=dict(os.environ, CONTAINERS_CONF=_containers_conf()))


def _containers_conf():
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import LocalProvider
    return LocalProvider({}).containers_conf() or ""


def cluster_leftovers(cluster):
    """Containers and networks still carrying the cluster label."""
    label = "label=aiinfra-gpu-cluster=%s" % cluster
    containers = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
    networks = podman("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split()
    return containers + networks


def destroy_cluster(cluster):
    label = "label=aiinfra-gpu-cluster=%s" % cluster
    names = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
    if names:
        podman("rm", "-f", "-t", "0", *names, check=False)
    for net in podman("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split():
        podman("network", "rm", "-f", net, check=False)
    # the cluster's known-hosts file (roles/gpu_cluster defaults: gpu_cluster_known_hosts_file)
    known_hosts = os.path.expanduser("~/.cache/aiinfra/known_hosts/local-%s" % cluster)
    if os.path.exists(known_hosts):
        os.unlink(known_hosts)


@pytest.fixture
def cluster_name(request):
    """A fresh cluster id, destroyed (containers + network) when the test ends, pass or fail."""
    name = unique_name(request.node.name.split("[")[0].replace("_", "-")[5:15].strip("-") or "t")
    yield name
    destroy_cluster(name)


def write_inventory(tmp_path, cluster, size=2, extra=None):
    """An inventory dir like inventories/local for ``cluster``: localhost + the plugin file.

    Host/group vars come from extra vars the caller passes; this only wires the cluster id.
    """
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (inv / "group_vars" / "gpu_nodes").mkdir(parents=True, exist_ok=True)
    src = os.path.join(ROOT, "inventories", "local")
    for rel in ("hosts.yml", os.path.join("group_vars", "gpu_nodes", "main.yml")):
        with open(os.path.join(src, rel)) as handle:
            (inv / rel).write_text(handle.read())
    with open(os.path.join(src, "group_vars", "all", "main.yml")) as handle:
        text = handle.read()
    lines = ["gpu_cluster_name: %s" % cluster, "gpu_cluster_size: %d" % size,
             "gpu_cluster_ssh_private_key_file: %s" % KEY]
    for key, value in (extra or {}).items():
        lines.append("%s: %s" % (key, json.dumps(value)))
    keep = [ln for ln in text.splitlines() if not ln.startswith(tuple(k.split(":")[0] + ":" for k in lines))]
    (inv / "group_vars" / "all" / "main.yml").write_text("\n".join(keep + lines) + "\n")
    (inv / "cluster.gpu_cluster.yml").write_text(
        "plugin: aiinfra.gpu_cluster.cluster\ncloud: local\ncluster: %s\n" % cluster)
    return str(inv)


def _unwrap(value):
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((k, _unwrap(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def inventory_list(inventory, env=None):
    """``ansible-inventory --list`` of an inventory, as plain data."""
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", inventory, "--list"], cwd=ROOT,
                          env=ansible_env(env), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError("ansible-inventory failed: %s" % proc.stderr[-3000:])
    return _unwrap(json.loads(proc.stdout))


class OneNode(dict):
    """A provisioned one-node cluster: inventory, cluster, host (its address); ``ssh`` runs a command on it."""

    def ssh(self, command, stdin=None, timeout=60):
        return subprocess.run(
            ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "gpuadmin@" + self["host"], command],
            input=stdin, capture_output=True, text=stdin is None, timeout=timeout, check=False)


def one_node(tmp_path_factory, prefix):
    """Generator for a module fixture: one fresh local node (a cluster of its own), removed afterwards, pass or fail."""
    cluster = unique_name(prefix)
    tmp = tmp_path_factory.mktemp(prefix)
    inv = write_inventory(tmp, cluster, size=1)
    try:
        run_playbook("playbooks/provision.yml", inventory=inv)
        host = podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cluster + "-0").stdout
        yield OneNode(inventory=inv, host=host.strip(), cluster=cluster, tmp=tmp)
    finally:
        destroy_cluster(cluster)
