"""Shared test helpers.

- The collection is importable as ``ansible_collections.aiinfra.gpu_cluster`` (``make setup``
  links the checkout under ``.collections``).
- ``run_playbook`` runs ansible-playbook from the checkout with the project's ansible.cfg.
- ``local_cluster`` makes local nodes under a cluster name of the test's own and removes
  everything carrying that name afterwards, even when the test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
VENV_BIN = os.path.dirname(sys.executable)
# the virtualenv of the lowest ansible-core meta/runtime.yml claims (make setup-lowest): test_lowest_core.py runs its
# ansible-playbook, from the same pytest session as the other integration files
LOWEST_BIN = os.path.join(ROOT, ".venv-lowest", "bin")
KEY = os.path.join(ROOT, ".ssh", "id_ed25519")

if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


# Integration files by how long they take (seconds on a 2-core CI machine, setup included, from the --durations
# table of CI's run; round figures, refresh them when a file changes much). pytest_collection_modifyitems puts the
# longest files first, so that with ``-n 2 --dist loadfile --no-loadscope-reorder`` (tests/run.sh) the two workers
# start on the long files and the short ones fill in at the end, instead of one worker finishing a long file alone.
# A file not listed counts as short (it keeps its place among the short ones).
INTEGRATION_SECONDS = {
    # clean-clone CI run of main at ca5e74c, 2026-12-06 (integration 2208 s on 2 workers); the files that build a
    # configured cluster from a run with the configured node image (test_train's build the one without it)
    "test_train.py": 520, "test_checkpoints.py": 160, "test_job_isolation.py": 360, "test_gcp.py": 295,
    "test_recover.py": 250, "test_train_site.py": 220, "test_azure.py": 215, "test_aws.py": 210,
    "test_checkpoints_stores.py": 195, "test_dataset_stores.py": 165, "test_monitoring.py": 160,
    "test_host_keys.py": 145, "test_roles_pytorch.py": 100, "test_local_cloud.py": 85, "test_ownership.py": 85,
    "test_roles_docker.py": 80, "test_spot_reservations.py": 80, "test_dataset.py": 80,
    "test_roles_nvidia_driver.py": 60, "test_roles_bad_input.py": 60, "test_firewall_truth.py": 55,
    "test_roles_preflight.py": 45, "test_roles_repository.py": 45, "test_collection.py": 45,
    "test_lowest_core.py": 95,  # .venv-lowest's ansible-playbook; run as a step of its own before b8e9c25
}
# The files whose clusters start from the configured node image (SharedCluster's, test_job_isolation's). The first
# of them to run on a machine without that image builds it: the other worker's first file is the longest one that
# needs no configured cluster, so that the image is there when that worker comes to one (two workers building it at
# once on 2 cores take ~130 s each, one alone ~90 s, and a cluster from the image ~20 s).
CONFIGURED_FILES = {
    "test_train.py", "test_checkpoints.py", "test_job_isolation.py", "test_recover.py", "test_checkpoints_stores.py",
    "test_dataset_stores.py", "test_dataset.py", "test_health.py", "test_preemption.py",
}


def pytest_collection_modifyitems(session, config, items):  # pylint: disable=unused-argument
    """The integration files longest first (INTEGRATION_SECONDS), each file's tests in their own order; the second
    file is the longest that needs no configured cluster (CONFIGURED_FILES)."""
    order = dict((item, index) for index, item in enumerate(items))

    def integration(item):
        return os.sep + "integration" + os.sep in str(item.fspath)

    def weight(item):
        return INTEGRATION_SECONDS.get(os.path.basename(str(item.fspath)), 0) if integration(item) else 0

    items.sort(key=lambda item: (-weight(item), order[item]))
    files = []
    for item in items:
        if integration(item) and os.path.basename(str(item.fspath)) not in files:
            files.append(os.path.basename(str(item.fspath)))
    if len(files) > 2 and files[0] in CONFIGURED_FILES and files[1] in CONFIGURED_FILES:
        second = next((f for f in files if f not in CONFIGURED_FILES), None)
        if second is not None:
            files.remove(second)
            files.insert(1, second)
            rank = dict((name, index) for index, name in enumerate(files))
            # a stable sort: each file's tests keep their order
            items.sort(key=lambda item: rank[os.path.basename(str(item.fspath))] if integration(item) else -1)


# seconds per integration file (setup, call and teardown of its tests: a module fixture's setup counts in its first
# test's, the shared cluster's build in the first test that takes it), printed at the end of the run: the figures
# for INTEGRATION_SECONDS. Under xdist the controller gets every worker's reports.
_FILE_SECONDS = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if "integration/" in path:
        _FILE_SECONDS[os.path.basename(path)] = _FILE_SECONDS.get(os.path.basename(path), 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS or hasattr(terminalreporter.config, "workerinput"):
        return
    terminalreporter.write_sep("=", "seconds per integration file (for tests/conftest.py INTEGRATION_SECONDS)")
    for name, seconds in sorted(_FILE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line("%7.0f  %s" % (seconds, name))
    terminalreporter.write_line("%7.0f  in all" % sum(_FILE_SECONDS.values()))


def unique_name(prefix="t"):
    """A cluster id of this test's own: prefix + 6 random hex characters."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def local_name(prefix):
    """A local cluster's name for a test: unique_name(prefix), after AIINFRA_TEST_CLUSTER_PREFIX when that is set
    (several people or sessions on one host can tell their clusters apart)."""
    return os.environ.get("AIINFRA_TEST_CLUSTER_PREFIX", "") + unique_name(prefix)


def ansible_env(extra=None, bin_dir=VENV_BIN):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("GPU_CLUSTER_NAME", None)
    env.update(extra or {})
    return env


def run_playbook(playbook, *args, extra_vars=None, inventory=None, env=None, timeout=1800, check=True, bin_dir=VENV_BIN):
    """Run ansible-playbook (``bin_dir``'s) from the checkout; returns CompletedProcess (stdout+stderr in .stdout)."""
    cmd = [os.path.join(bin_dir, "ansible-playbook"), playbook]
    if inventory:
        cmd += ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(env, bin_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
    for path in (known_hosts, known_hosts + ".old"):  # .old: the backup ssh-keygen -R leaves when a node is replaced
        if os.path.exists(path):
            os.unlink(path)


@pytest.fixture
def cluster_name(request):
    """A fresh cluster id, destroyed (containers + network) when the test ends, pass or fail."""
    name = local_name(request.node.name.split("[")[0].replace("_", "-")[5:15].strip("-") or "t")
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
    if "gpu_cluster_health" not in (extra or {}):
        # the health gate measures the links between nodes, which on local nodes sharing a loaded 2-core controller
        # swing several-fold: the tests that are not about it train without it (test_health.py turns it on, and the
        # site test's AWX project keeps the default, on)
        lines.append("gpu_cluster_health: false")
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


# -- one configured cluster per pytest process (each xdist worker), shared by the tests that only run jobs on it ------

SHARED_CONFIGURE = "tests/integration/playbooks/pytorch_nodes.yml"
# What jobs and data staging leave on a node that a freshly configured one does not have (after the pytorch role a
# node has /opt/aiinfra/pytorch and /opt/aiinfra/wheelhouse, no /var/lib/aiinfra, no /etc/aiinfra): the runs' and
# uploaders' systemd units, the users the torchrun role makes (their homes are under torchrun_base_dir; the role
# makes a user only when it does not exist), the run and job directories, the staged data, a test's blackhole
# routes. SHARED_CLEAN removes them, then fails if any is still there. It keeps the storage client
# (/opt/aiinfra/storage, the dataset role's, installed by the first play that uses a store): a node keeps it between
# jobs as it keeps the pytorch role's virtualenv, the role re-installs it only when its stamp (the schemes in use,
# the package's files, the wheels) changes, and installing it again for every test module cost CI 1-3 minutes each
# time; its install on fresh nodes is what test_checkpoints' new cluster, test_job_isolation's own cluster and the
# first module of a worker to use each store do.
SHARED_CLEAN = r"""
systemctl stop 'aiinfra-torchrun-*' 'aiinfra-ckpt-*' 2>/dev/null
systemctl reset-failed 'aiinfra-torchrun-*' 'aiinfra-ckpt-*' 2>/dev/null
for u in $(awk -F: '$6 ~ "^/var/lib/aiinfra/" || $1 == "aiinfra-ckpt" {print $1}' /etc/passwd); do
  pkill -KILL -u "$u"; sleep 0.2; userdel "$u" || exit 1
done
for t in blackhole unreachable prohibit; do
  ip route show type $t | while read -r _ dst _; do ip route del $t "$dst"; done
done
rm -rf /var/lib/aiinfra /etc/aiinfra
left=$(systemctl list-units --all --no-legend --plain 'aiinfra-torchrun-*' 'aiinfra-ckpt-*')
[ -z "$left" ] || { echo "units left: $left"; exit 1; }
awk -F: '$6 ~ "^/var/lib/aiinfra/" || $1 == "aiinfra-ckpt" {print "user left: " $1; bad=1} END {exit bad}' /etc/passwd \
  || exit 1
[ -d /opt/aiinfra/pytorch ] && ! ls /opt/aiinfra | grep -qvxE 'pytorch|wheelhouse|storage' \
  || { echo "in /opt/aiinfra: $(ls /opt/aiinfra)"; exit 1; }
"""


# A configured node, kept as an image (a baked image, as users bake an AMI): the clusters that the training tests
# share, and test_job_isolation's, start from it, so the pytorch role they run finds its work done (about 15 s a
# cluster instead of 1.5-2.5 minutes, 4-5 times in CI's run). The first cluster built on this machine with the
# current roles and plugins runs the role on fresh nodes and saves its node 0 (CONFIGURED_CLEAN: no host keys, no
# machine id, logs or temporary files). The key is a hash of everything the role's run depends on: a change of a
# role or a plugin builds and saves a new one (the older ones are removed). The role's fresh-node path stays tested
# by the first build, the site test (site.yml on fresh nodes), the lowest-core train and the roles' own tests.
CONFIGURED_REPO = "localhost/aiinfra-test-configured"
CONFIGURED_CLEAN = ("rm -f /etc/ssh/ssh_host_* && : > /etc/machine-id && rm -rf /var/log/journal/* /tmp/* /var/tmp/* "
                    "/var/lib/aiinfra /etc/aiinfra")


def configured_key():
    """A hash of the base node image's name and of every file the pytorch role's run reads (roles, plugins,
    meta, the playbook, the wheel cache's list)."""
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import default_image
    digest = hashlib.sha256(default_image().encode())
    for top in ("roles", "plugins", "meta", SHARED_CONFIGURE):
        path = os.path.join(ROOT, top)
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(d, f) for d, dirs, names in os.walk(path) if "__pycache__" not in d for f in names)
        for name in files:
            digest.update(os.path.relpath(name, ROOT).encode() + b"\0")
            with open(name, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()[:16]


def configured_image(key=None):
    """The configured node image for the current roles and plugins (or ``key``), or None when there is none yet."""
    image = "%s:%s" % (CONFIGURED_REPO, key or configured_key())
    return image if podman("image", "exists", image, check=False).returncode == 0 else None


def save_configured_image(node, key):
    """Keep ``node`` (freshly configured by SHARED_CONFIGURE, nothing run on it since) as the configured image of
    ``key`` (configured_key() before the node was made)."""
    image = "%s:%s" % (CONFIGURED_REPO, key)
    suffix = uuid.uuid4().hex[:8]
    raw, scratch = "%s:raw-%s" % (CONFIGURED_REPO, suffix), "aiinfra-test-configured-%s" % suffix
    try:
        podman("commit", "-q", node, raw)
        podman("run", "--name", scratch, "--network", "none", raw, "/bin/sh", "-c", CONFIGURED_CLEAN)
        podman("commit", "-q", "--change", 'CMD ["/sbin/init"]', scratch, image)
    except subprocess.CalledProcessError as exc:  # a cache: without it the next cluster runs the role from scratch
        sys.stderr.write("could not save the configured node image: %s\n" % (exc.stderr or exc))
        return None
    finally:
        podman("rm", "-f", scratch, check=False)
        podman("rmi", raw, check=False)
    for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}", CONFIGURED_REPO).stdout.split():
        if old != image:
            podman("rmi", old, check=False)  # one a cluster still uses stays until the next save
    return image


class SharedCluster(object):
    """One local cluster provisioned and configured (the pytorch role, as the training tests' own clusters were) for
    all the test modules of this pytest process that take it. With ``--dist loadfile`` an xdist worker runs whole
    files one after the other, so one module at a time holds it.

    ``take(size)`` hands it over as a fresh one would be: ``size`` nodes (a surplus node removed, a missing one made
    by provision.yml), every node's container running with sshd up, every container the pytorch role ran on (a node
    a test replaced is configured again) and no job state left on any node (SHARED_CLEAN). When it cannot be put
    right, it is removed and a new one built. ``rebuild(size)`` is for a scenario that tears the cluster down and
    needs a new one: the new one is then the shared cluster. ``discard()`` removes it (at the session's end, pass or
    fail)."""

    def __init__(self, tmp_path_factory):
        self.tmp_factory = tmp_path_factory
        self.name = None
        self.configured = {}     # node -> the container id the pytorch role configured
        self.builds = 0
        self.image = None        # the configured node image its nodes start from (None: the default node image)

    def _nodes(self, size):
        return ["%s-%d" % (self.name, rank) for rank in range(size)]

    def _inventory(self, size):
        extra = {"gpu_cluster_image": self.image} if self.image else None
        return write_inventory(self.tmp_factory.mktemp("shared-cluster"), self.name, size, extra=extra)

    def _ids(self):
        label = "label=aiinfra-gpu-cluster=%s" % self.name
        out = podman("ps", "-a", "--filter", label, "--format", "{{.Names}} {{.ID}}").stdout
        return dict(line.split()[:2] for line in out.splitlines() if line.strip())

    def _full_ids(self, names):
        return dict((name, podman("inspect", "-f", "{{.Id}}", name).stdout.strip()) for name in names)

    def _configure(self, inventory, nodes):
        run_playbook(SHARED_CONFIGURE, "--limit", ",".join(nodes), inventory=inventory, timeout=1500)
        self.configured.update(self._full_ids(nodes))

    def _build(self, size):
        self.name = local_name("shr")
        self.configured = {}
        self.builds += 1
        key = configured_key()
        self.image = configured_image(key)
        try:
            inventory = self._inventory(size)
            run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
            self._configure(inventory, self._nodes(size))
            if self.image is None:
                save_configured_image(self._nodes(size)[0], key)
        except BaseException:
            self.discard()
            raise
        return inventory

    def _repair(self, size):
        nodes = self._nodes(size)
        present = self._ids()
        for extra in sorted(set(present) - set(nodes)):
            podman("rm", "-f", "-t", "0", extra)
        for node in nodes:
            if node in present:
                podman("start", node)
        inventory = self._inventory(size)
        if [n for n in nodes if n not in present]:
            run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
        ids = self._full_ids(nodes)
        unconfigured = [n for n in nodes if self.configured.get(n) != ids[n]]
        if unconfigured:
            self._configure(inventory, unconfigured)
        for node in nodes:
            deadline = time.time() + 120
            while podman("exec", node, "systemctl", "is-active", "ssh", check=False).stdout.strip() != "active":
                if time.time() > deadline:
                    raise AssertionError("%s: sshd did not come back" % node)
                time.sleep(1)
            cleaned = podman("exec", node, "sh", "-c", SHARED_CLEAN, check=False)
            if cleaned.returncode != 0:
                raise AssertionError("%s: job state left after cleaning: %s" % (node, cleaned.stdout + cleaned.stderr))
        return inventory

    def take(self, size):
        """{name, inventory, nodes}: the cluster at ``size`` nodes, ready as a freshly configured one."""
        inventory = None
        if self.name is not None:
            try:
                inventory = self._repair(size)
            except Exception as exc:  # pylint: disable=broad-except
                sys.stderr.write("shared cluster %s: %s; building a new one\n" % (self.name, exc))
                self.discard()
        if self.name is None:
            inventory = self._build(size)
        return {"name": self.name, "inventory": inventory, "nodes": self._nodes(size)}

    def rebuild(self, size):
        """A new cluster (new name), removing the old one: for a test whose scenario is a new cluster."""
        self.discard()
        return self.take(size)

    def discard(self):
        if self.name is not None:
            destroy_cluster(self.name)
        self.name = None
        self.configured = {}


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    """This process's SharedCluster; whatever cluster it holds at the end is removed, pass or fail."""
    shared = SharedCluster(tmp_path_factory)
    try:
        yield shared
    finally:
        shared.discard()
