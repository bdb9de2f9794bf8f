"""The Ubuntu and RHEL paths of the roles, which cannot run on the Debian test nodes: their templates
and the expressions their tasks evaluate are rendered here with Ansible's own templar (Jinja2 with
Ansible's filters and this collection's), from the real role files, with the plans the filters make."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from conftest import COLLECTIONS, ROOT

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 (the lowest claimed, in .venv-lowest) templates every string
    def trust_as_template(text):
        return text
TRUSTED = {"trusted_as_template": True} if "trusted_as_template" in DataLoader.load_from_file.__code__.co_varnames else {}

ROLES = os.path.join(ROOT, "roles")
# Templates name this collection's filters by FQCN: Ansible's collection loader must own the
# ansible_collections package (an earlier plain import from sys.path would hide the plugins from it).
for _name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
    del sys.modules[_name]
_AnsibleCollectionFinder(paths=[COLLECTIONS])._install()

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import gpu_compat as compat  # noqa: E402

FACTS = {
    "ubuntu-22.04": {"os_family": "Debian", "distribution": "Ubuntu", "distribution_release": "jammy",
                     "distribution_version": "22.04", "distribution_major_version": "22", "architecture": "x86_64",
                     "kernel": "5.15.0-1063-aws"},
    "ubuntu-24.04": {"os_family": "Debian", "distribution": "Ubuntu", "distribution_release": "noble",
                     "distribution_version": "24.04", "distribution_major_version": "24", "architecture": "aarch64",
                     "kernel": "6.8.0-1015-aws"},
    "rhel-9": {"os_family": "RedHat", "distribution": "Rocky", "distribution_release": "Blue Onyx",
               "distribution_version": "9.4", "distribution_major_version": "9", "architecture": "x86_64",
               "kernel": "5.14.0-427.el9.x86_64"},
    "debian-12": {"os_family": "Debian", "distribution": "Debian", "distribution_release": "bookworm",
                  "distribution_version": "12.15", "distribution_major_version": "12", "architecture": "x86_64",
                  "kernel": "6.1.0-28-amd64"},
}
H100_HGX = compat.gpu_facts(["0000:18:00.0 0x10de 0x2330 0x030200"] * 8 + ["0000:05:00.0 0x10de 0x22a3 0x068000"])
NO_GPU = compat.gpu_facts([])


def role_file(role, *parts):
    return os.path.join(ROLES, role, *parts)


def role_vars(role, os_name, **extra):
    """What a play sees inside the role: its defaults and vars, the node's facts, preflight's facts, extras."""
    loader = DataLoader()
    variables = {"ansible_managed": "Ansible managed", "ansible_facts": FACTS[os_name],
                 "preflight_os": compat.os_support(FACTS[os_name]["distribution"],
                                                   FACTS[os_name]["distribution_version"],
                                                   FACTS[os_name]["distribution_major_version"]),
                 "preflight_gpu": NO_GPU, "preflight_nvidia_loaded_version": "", "ansible_check_mode": False}
    for sub in ("defaults", "vars"):
        path = role_file(role, sub, "main.yml")
        if os.path.exists(path):
            variables.update(loader.load_from_file(path, **TRUSTED) or {})
    variables.update(extra)
    return variables


def render(text, variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(text))


def render_template(role, name, variables):
    with open(role_file(role, "templates", name)) as handle:
        return render(handle.read(), variables)


def tasks(role, name):
    """Every task of a role's task file, blocks flattened, by name."""
    found = {}

    def walk(items, inherited):
        for task in items or []:
            scope = dict(inherited)
            scope.update(task.get("vars") or {})
            if "block" in task:
                walk(task["block"], scope)
                walk(task.get("always"), scope)
            task = dict(task, vars=scope)  # a task sees its blocks' vars
            found[task.get("name")] = task

    walk(DataLoader().load_from_file(role_file(role, "tasks", name), **TRUSTED), {})
    return found


def expr(value):
    """A conditional (when/that) as a template."""
    return "{{ %s }}" % value.strip()


def run_set_fact(role, task_file, task_name, variables):
    """Evaluate a set_fact task of the role (its vars too) and add the facts to ``variables``."""
    task = tasks(role, task_file)[task_name]
    scope = dict(variables)
    scope.update(task.get("vars") or {})
    for key, value in task["ansible.builtin.set_fact"].items():
        variables[key] = render(value, scope)
        scope[key] = variables[key]
    return variables


# -- nvidia_driver ---------------------------------------------------------------------------------
def driver_vars(os_name, gpu, **role_extra):
    variables = role_vars("nvidia_driver", os_name, preflight_gpu=gpu, **role_extra)
    return run_set_fact("nvidia_driver", "plan.yml", "Plan the driver from the compatibility data", variables)


def repository_vars(variables, caller_role, caller_file):
    """The scope of nvidia_driver's tasks/repository.yml as ``caller_role`` includes it: the caller's variables,
    nvidia_driver's defaults and vars (include_role loads them), the repository the caller passes."""
    scope = dict(variables)
    for key, value in role_vars("nvidia_driver", "debian-12").items():
        if key.startswith("nvidia_driver_") and key not in variables:
            scope[key] = value
    include = tasks(caller_role, caller_file)
    include = [task for task in include.values() if "nvidia_driver_repository" in (task.get("vars") or {})]
    assert len(include) == 1, include  # one place passes the repository: the include of repository.yml
    scope["nvidia_driver_repository"] = render(include[0]["vars"]["nvidia_driver_repository"], scope)
    return scope


def test_driver_ubuntu_2204_hgx_path():
    v = driver_vars("ubuntu-22.04", H100_HGX)
    plan = v["nvidia_driver_plan"]
    assert plan["errors"] == [] and plan["install"] and plan["kernel_modules"] == "open"
    r = repository_vars(v, "nvidia_driver", "setup-Debian.yml")
    assert r["nvidia_driver_repository"] == plan["repo"]
    sources = render_template("nvidia_driver", "cuda.sources.j2", r)
    assert "URIs: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/\n" in sources
    assert "Suites: /\n" in sources
    # the repository is signed by the key file the role downloads
    setup = tasks("nvidia_driver", "setup-Debian.yml")
    repository = tasks("nvidia_driver", "repository.yml")
    key_task = repository["Fetch the CUDA repository's signing key"]["ansible.builtin.get_url"]
    assert render(key_task["url"], r) == "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/3bf863cc.pub"
    assert "Signed-By: %s\n" % key_task["dest"] in sources
    # packages, headers, fabric manager pinned to the driver's version
    install = setup["Install the driver packages"]["ansible.builtin.apt"]
    assert render(install["name"], v) == ["nvidia-open-580"]
    assert plan["headers"] == ["linux-headers-5.15.0-1063-aws"]
    fm = setup["Install fabric manager"]["ansible.builtin.apt"]["name"]
    assert render(fm, dict(v, nvidia_driver_pkg_version={"stdout": "580.82.07-1"})) == "nvidia-fabricmanager-580=580.82.07-1"
    # the packages held include the installed meta package
    assert "nvidia-open-580" in plan["hold"]
    # only the CUDA repository is added, not Debian's non-free components
    assert render(expr(repository["Add Debian's non-free components"]["when"]), r) is False
    assert render(expr(repository["Add the CUDA repository"]["when"]), r) is True


def test_driver_ubuntu_2404_mirror_and_arm():
    v = driver_vars("ubuntu-24.04", NO_GPU, nvidia_driver_install_without_gpu=True,
                    nvidia_driver_cuda_repo_url="https://mirror.internal/cuda/ubuntu2404/sbsa/")
    assert v["nvidia_driver_plan"]["repo"]["url"].endswith("/repos/ubuntu2404/aarch64/")
    r = repository_vars(v, "nvidia_driver", "setup-Debian.yml")
    sources = render_template("nvidia_driver", "cuda.sources.j2", r)
    assert "URIs: https://mirror.internal/cuda/ubuntu2404/sbsa/\n" in sources
    # the mirror serves the repository's signing key too
    key_task = tasks("nvidia_driver", "repository.yml")["Fetch the CUDA repository's signing key"]
    assert render(key_task["ansible.builtin.get_url"]["url"], r) == "https://mirror.internal/cuda/ubuntu2404/sbsa/3bf863cc.pub"


def test_driver_rhel9_path():
    v = driver_vars("rhel-9", H100_HGX, nvidia_driver_branch="570")
    plan = v["nvidia_driver_plan"]
    r = repository_vars(v, "nvidia_driver", "setup-RedHat.yml")
    repo = render_template("nvidia_driver", "cuda.repo.j2", r)
    assert "[cuda-rhel9-x86_64]\n" in repo
    assert "baseurl=https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/\n" in repo
    assert "gpgcheck=1\n" in repo
    assert "gpgkey=https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/D42D0685.pub\n" in repo
    setup = tasks("nvidia_driver", "setup-RedHat.yml")
    repository = tasks("nvidia_driver", "repository.yml")["Add NVIDIA's CUDA repository (RedHat family)"]
    assert render(repository["ansible.builtin.template"]["dest"], r) == "/etc/yum.repos.d/aiinfra-cuda-rhel9.repo"
    assert render(setup["Install the driver branch (its module stream pins the branch)"]["ansible.builtin.dnf"]["name"],
                  v) == ["@nvidia-driver:570-open"]
    assert render(setup["Install the kernel headers of the running kernel"]["ansible.builtin.dnf"]["name"], v) == [
        "kernel-devel-5.14.0-427.el9.x86_64", "kernel-headers-5.14.0-427.el9.x86_64", "dkms"]
    assert plan["fabricmanager"] == "nvidia-fabric-manager"


def test_driver_debian_nonfree_sources():
    v = driver_vars("debian-12", NO_GPU, nvidia_driver_install_without_gpu=True,
                    nvidia_driver_debian_mirror="http://mirror.internal/debian/")
    text = render_template("nvidia_driver", "debian-nonfree.sources.j2", repository_vars(v, "nvidia_driver", "setup-Debian.yml"))
    stanzas = [s for s in text.split("\n\n") if "Types:" in s]
    assert len(stanzas) == 2
    assert "URIs: http://mirror.internal/debian/\nSuites: bookworm bookworm-updates\n" \
           "Components: contrib non-free non-free-firmware\n" in stanzas[0]
    assert "URIs: http://mirror.internal/debian-security\nSuites: bookworm-security\n" in stanzas[1]
    # cuda adds the same file through nvidia_driver's repository.yml: the same text, whichever role names the mirror
    for mirror in ({"nvidia_driver_debian_mirror": "http://mirror.internal/debian/"},
                   {"cuda_debian_mirror": "http://mirror.internal/debian/"}):
        cv = role_vars("cuda", "debian-12", **mirror)
        cv["cuda_plan"] = compat.cuda_plan("debian-12", "11.8")
        dv = driver_vars("debian-12", NO_GPU, nvidia_driver_install_without_gpu=True, **mirror)
        assert render_template("nvidia_driver", "debian-nonfree.sources.j2",
                               repository_vars(cv, "cuda", "setup-Debian.yml")) == text
        assert render_template("nvidia_driver", "debian-nonfree.sources.j2",
                               repository_vars(dv, "nvidia_driver", "setup-Debian.yml")) == text


@pytest.mark.parametrize("mirror", [{"cuda_repo_url": "https://mirror.internal/cuda/ubuntu2204/x86_64/"},
                                    {"nvidia_driver_cuda_repo_url": "https://mirror.internal/cuda/ubuntu2204/x86_64/"},
                                    {}])
def test_driver_and_cuda_write_one_cuda_repository(mirror):
    """Either role's mirror variable alone: both roles write the same aiinfra-cuda.sources and fetch the same key."""
    dv = driver_vars("ubuntu-22.04", H100_HGX, **mirror)
    cv = cuda_vars("ubuntu-22.04", cuda_version="12.8", nvidia_driver_plan=dv["nvidia_driver_plan"], **mirror)
    key = tasks("nvidia_driver", "repository.yml")["Fetch the CUDA repository's signing key"]["ansible.builtin.get_url"]
    written = []
    for scope in (repository_vars(dv, "nvidia_driver", "setup-Debian.yml"), repository_vars(cv, "cuda", "setup-Debian.yml")):
        written.append((render_template("nvidia_driver", "cuda.sources.j2", scope), render(key["url"], scope)))
    assert written[0] == written[1]
    url = list(mirror.values())[0] if mirror else "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/"
    assert "URIs: %s\n" % url in written[0][0] and written[0][1] == url + "3bf863cc.pub"
    # no role but nvidia_driver has a template for it
    assert not [n for n in os.listdir(role_file("cuda", "templates")) if "sources" in n or n.endswith(".repo.j2")]


def test_driver_and_cuda_with_different_mirrors_fail_before_writing():
    check = tasks("nvidia_driver", "mirrors.yml")["Fail when the driver and CUDA name different mirrors for one repository file"]
    v = driver_vars("ubuntu-22.04", H100_HGX, nvidia_driver_cuda_repo_url="https://a.internal/cuda/",
                    cuda_repo_url="https://b.internal/cuda/")
    assert render(expr(" and ".join(check["ansible.builtin.assert"]["that"])), v) is False
    assert "nvidia_driver_cuda_repo_url and cuda_repo_url name https://a.internal/cuda/ and https://b.internal/cuda/" in \
        " ".join(render(check["ansible.builtin.assert"]["fail_msg"], v).split())
    # the driver checks it in validate.yml (the first play), and repository.yml before writing anything
    assert "mirrors.yml" in str(tasks("nvidia_driver", "plan.yml")["Check the driver and CUDA agree on the mirrors"])
    assert list(tasks("nvidia_driver", "repository.yml"))[0] == "Check the driver and CUDA agree on the mirrors"
    same = driver_vars("ubuntu-22.04", H100_HGX, nvidia_driver_cuda_repo_url="https://a.internal/cuda/",
                       cuda_repo_url="https://a.internal/cuda/")
    assert render(expr(" and ".join(check["ansible.builtin.assert"]["that"])), same) is True


@pytest.mark.parametrize("proc_version, expected", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.309.01  Thu Nov 13 2025\nGCC version:  gcc 12", "535.309.01"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build  (dvs-builder@U16)", "580.82.07"),
    ("", ""),
])
def test_loaded_driver_is_read_the_same_way_everywhere(proc_version, expected):
    """preflight (node_facts.py hands over the file's text) and nvidia_driver (load.yml, reboot.yml) read the
    version with one filter, aiinfra.gpu_cluster.gpu_loaded_driver_version: one regular expression."""
    import base64
    spec = importlib.util.spec_from_file_location("node_facts", role_file("preflight", "files", "node_facts.py"))
    module = importlib.util.module_from_spec(spec)
    saved = sys.stdout
    try:
        sys.stdout = open(os.devnull, "w")
        spec.loader.exec_module(module)  # prints the node's facts on import
    finally:
        sys.stdout.close()
        sys.stdout = saved
    assert not hasattr(module, "re"), "node_facts.py parses nothing: the controller does"
    preflight = tasks("preflight", "main.yml")["Set the node's GPU facts"]
    node = json.dumps({"pci": [], "secure_boot": "bios", "nvidia_version": proc_version, "nvidia_smi_gpu_count": -1})
    scope = dict(preflight["vars"], preflight_node_raw={"stdout": node}, preflight_inputs={"preflight_gpu_architecture": ""})
    assert render(preflight["ansible.builtin.set_fact"]["preflight_nvidia_loaded_version"], scope) == expected
    content = base64.b64encode(proc_version.encode()).decode()
    load = tasks("nvidia_driver", "load.yml")["Work out what is loaded"]["ansible.builtin.set_fact"]
    variables = {"nvidia_driver_module_version": {"rc": 1, "stdout": ""},
                 "nvidia_driver_proc": {"results": [{"content": base64.b64encode(b"nouveau 1 0 - Live\n").decode()},
                                                    {"content": content}]}}
    assert render(load["nvidia_driver_loaded_version"], variables) == expected
    assert render(load["nvidia_driver_nouveau_loaded"], variables) is True
    decide = tasks("nvidia_driver", "load.yml")["Decide whether this node needs a reboot"]
    scope = dict(decide["vars"], nvidia_driver_modprobe={"rc": 0}, nvidia_driver_proc_after={"content": content})
    assert render(decide["vars"]["nvidia_driver_loaded_now"], scope) == expected
    after = tasks("nvidia_driver", "reboot.yml")["Fail when the reboot did not load the installed driver"]
    scope = dict(after["vars"], nvidia_driver_proc_rebooted={"content": content})
    assert render(after["vars"]["nvidia_driver_loaded_after"], scope) == expected
    for path in [role_file(r, "tasks", f) for r in ("preflight", "nvidia_driver") for f in os.listdir(role_file(r, "tasks"))]:
        with open(path) as handle:
            assert "Kernel Module" not in handle.read(), path


# -- cuda ------------------------------------------------------------------------------------------
def cuda_vars(os_name, **extra):
    variables = role_vars("cuda", os_name, **extra)
    return run_set_fact("cuda", "plan.yml", "Plan CUDA from the compatibility data", variables)


def test_cuda_ubuntu_toolkit_paths():
    v = cuda_vars("ubuntu-22.04", cuda_version="12.8", nvidia_driver_plan={"branch": "570", "install": True, "adopt": False})
    assert v["cuda_plan"]["errors"] == []
    path_sh = render_template("cuda", "cuda-path.sh.j2", v)
    assert 'export PATH="/usr/local/cuda-12.8/bin:${PATH}"' in path_sh
    assert render_template("cuda", "cuda-ld.conf.j2", v).strip().splitlines()[-1] == "/usr/local/cuda-12.8/lib64"
    main = tasks("cuda", "install.yml")
    assert render(expr(" and ".join("(%s)" % c for c in main["Put CUDA on PATH and in the loader's path"]["when"])),
                  dict(v, cuda_install=True)) is True
    setup = tasks("cuda", "setup-Debian.yml")
    assert render(setup["Install the CUDA packages"]["ansible.builtin.apt"]["name"], v) == ["cuda-toolkit-12-8"]
    sources = render_template("nvidia_driver", "cuda.sources.j2", repository_vars(v, "cuda", "setup-Debian.yml"))
    assert "URIs: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/\n" in sources


def test_cuda_newer_than_the_planned_driver_is_refused():
    v = cuda_vars("ubuntu-22.04", cuda_version="12.8", nvidia_driver_plan={"branch": "535", "install": True, "adopt": False})
    assert "CUDA 12.8 is newer than driver branch 535" in v["cuda_plan"]["errors"][0]
    # without a planned driver the loaded one counts
    v = cuda_vars("rhel-9", cuda_version="13.0", preflight_nvidia_loaded_version="570.133.20")
    assert "CUDA 13.0 is newer than driver branch 570" in v["cuda_plan"]["errors"][0]


def test_cuda_rhel_repo_and_runtime():
    v = cuda_vars("rhel-9", cuda_version="12.9", cuda_component="runtime", preflight_nvidia_loaded_version="575.57.08")
    assert v["cuda_plan"]["packages"] == ["cuda-cudart-12-9"]
    repo = render_template("nvidia_driver", "cuda.repo.j2", repository_vars(v, "cuda", "setup-RedHat.yml"))
    assert "baseurl=https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/\n" in repo
    setup = tasks("cuda", "setup-RedHat.yml")
    assert render(setup["Install the CUDA packages"]["ansible.builtin.dnf"]["name"], v) == ["cuda-cudart-12-9"]


def test_cuda_debian_toolkit_needs_no_paths():
    v = cuda_vars("debian-12")
    assert v["cuda_plan"]["lib_dir"] == ""
    main = tasks("cuda", "install.yml")
    assert render(expr(" and ".join("(%s)" % c for c in main["Put CUDA on PATH and in the loader's path"]["when"])),
                  dict(v, cuda_install=True)) is False


# -- docker ----------------------------------------------------------------------------------------
def docker_vars(os_name, gpu=None, **extra):
    gpu = gpu or NO_GPU
    variables = role_vars("docker", os_name, preflight_gpu=gpu, **extra)
    return run_set_fact("docker", "plan.yml", "Decide the repository and the nvidia runtime", variables)


def test_docker_ubuntu_noble_repo():
    v = docker_vars("ubuntu-24.04")
    text = render_template("docker", "docker.sources.j2", v)
    assert "URIs: https://download.docker.com/linux/ubuntu\nSuites: noble\nComponents: stable\nArchitectures: arm64\n" in text
    setup = dict(tasks("docker", "setup-Debian.yml"), **tasks("docker", "repos-Debian.yml"),
                 **tasks("docker", "repo-docker-Debian.yml"))
    assert setup["Add Docker's apt repository (signing key and source)"]["ansible.builtin.include_tasks"] == "repo-docker-Debian.yml"
    assert render(setup["Fetch Docker's signing key"]["ansible.builtin.get_url"]["url"], v) == \
        "https://download.docker.com/linux/ubuntu/gpg"
    assert "Signed-By: %s\n" % setup["Fetch Docker's signing key"]["ansible.builtin.get_url"]["dest"] in text
    assert render(setup["Install Docker"]["ansible.builtin.apt"]["name"], v) == [
        "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"]


def test_docker_rhel_repo_with_nvidia_toolkit_on_gpu_nodes():
    v = docker_vars("rhel-9", gpu=H100_HGX)
    assert v["docker_nvidia_enabled"] is True
    repo = render_template("docker", "docker-ce.repo.j2", v)
    assert "baseurl=https://download.docker.com/linux/rhel/$releasever/$basearch/stable\n" in repo
    assert "gpgkey=https://download.docker.com/linux/rhel/gpg\n" in repo
    toolkit = render_template("docker", "nvidia-container-toolkit.repo.j2", v)
    assert "baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch\n" in toolkit
    setup = tasks("docker", "setup-RedHat.yml")
    assert render(setup["Install Docker"]["ansible.builtin.dnf"]["name"], v)[-1] == "nvidia-container-toolkit"
    # the toolkit repository is added only where it is used
    assert render(expr(setup["Add the NVIDIA container toolkit repository"]["when"]), docker_vars("rhel-9")) is False


def test_docker_distribution_package_refused_on_rhel():
    check = tasks("docker", "plan.yml")["Check the source exists on this OS"]["ansible.builtin.assert"]
    assert render(expr(check["that"]), docker_vars("rhel-9", docker_source="distribution")) is False
    assert render(expr(check["that"]), docker_vars("debian-12", docker_source="distribution")) is True
    assert "RHEL ships podman" in render(check["fail_msg"], docker_vars("rhel-9", docker_source="distribution"))


def test_docker_debian_toolkit_repo_arch():
    v = docker_vars("ubuntu-22.04", docker_nvidia_container_toolkit="always")
    text = render_template("docker", "nvidia-container-toolkit.sources.j2", v)
    assert "URIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64\n" in text


DAEMON_CASES = [
    # id, existing daemon.json, gpu, extra vars, expected merged (None: left alone)
    ("fresh-cpu-node", "", NO_GPU, {},
     {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}}),
    ("keeps-foreign-keys", json.dumps({"data-root": "/data/docker", "log-opts": {"max-size": "10m", "labels": "team"}}),
     NO_GPU, {},
     {"data-root": "/data/docker", "log-driver": "json-file",
      "log-opts": {"max-size": "100m", "max-file": "3", "labels": "team"}}),
    ("gpu-node-gets-runtime", "{}", H100_HGX, {},
     {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"},
      "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}),
    ("default-runtime", "{}", H100_HGX, {"docker_nvidia_default_runtime": True},
     {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}, "default-runtime": "nvidia",
      "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}),
    ("already-merged-is-left-alone",
     '{\n    "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},\n'
     '    "log-driver": "json-file", "log-opts": {"max-file": "3", "max-size": "100m"}}', H100_HGX, {}, None),
    ("no-runtime-without-gpu", json.dumps({"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}}),
     NO_GPU, {}, None),
]


@pytest.mark.parametrize("existing, gpu, extra, expected", [c[1:] for c in DAEMON_CASES], ids=[c[0] for c in DAEMON_CASES])
def test_docker_daemon_json_is_merged_never_overwritten(existing, gpu, extra, expected):
    import base64
    v = docker_vars("debian-12", gpu=gpu, **extra)
    task = tasks("docker", "daemon.yml")["Merge the settings into daemon.json"]
    scope = dict(v, docker_daemon_current={"content": base64.b64encode(existing.encode()).decode()})
    scope.update(task["vars"])
    write = render(expr(task["when"]), scope)
    if expected is None:
        assert write is False
    else:
        assert write is True
        assert json.loads(render(task["ansible.builtin.copy"]["content"], scope)) == expected


# -- pytorch ---------------------------------------------------------------------------------------
def pytorch_vars(gpu=None, **extra):
    gpu = gpu or NO_GPU
    variables = role_vars("pytorch", "ubuntu-22.04", preflight_gpu=gpu, **extra)
    run_set_fact("pytorch", "plan.yml", "Plan the wheels from the compatibility data", variables)
    return run_set_fact("pytorch", "plan.yml", "Decide the requirements and pip's arguments", variables)


def test_pytorch_gpu_node_installs_from_the_matching_index():
    v = pytorch_vars(gpu=H100_HGX, preflight_nvidia_loaded_version="570.133.20", pytorch_torchvision=True)
    assert v["pytorch_plan"]["index"] == "cu128"
    assert v["pytorch_requirements"] == ["torch==2.13.0+cu128", "torchvision==0.28.0+cu128"]
    assert v["pytorch_pip_args"] == [
        "--index-url", "https://download.pytorch.org/whl/cu128", "--extra-index-url", "https://pypi.org/simple"]


def test_pytorch_follows_the_planned_driver_over_the_loaded_one():
    v = pytorch_vars(gpu=H100_HGX, preflight_nvidia_loaded_version="570.133.20",
                     nvidia_driver_plan={"branch": "580", "install": True, "adopt": False})
    assert v["pytorch_plan"]["index"] == "cu130"


def test_pytorch_wheelhouse_mode():
    v = pytorch_vars(pytorch_wheelhouse="/srv/wheels", pytorch_extra_packages=["numpy==2.3.*"],
                     pytorch_pip_extra_args="--no-cache-dir")
    assert v["pytorch_requirements"] == ["torch==2.13.0+cpu", "numpy==2.3.*"]
    assert v["pytorch_pip_args"] == ["--no-index", "--find-links", "/opt/aiinfra/wheelhouse", "--no-cache-dir"]
    # the shared wheelhouse role does the staging, with pytorch's settings
    include = tasks("pytorch", "apply.yml")["Stage the wheelhouse from the controller"]
    assert include["ansible.builtin.include_role"]["name"] == "aiinfra.gpu_cluster.wheelhouse"
    given = dict((key, render(value, v)) for key, value in include["vars"].items())
    assert given["wheelhouse_path"] == "/srv/wheels" and given["wheelhouse_requirements"] == v["pytorch_requirements"]
    assert given["wheelhouse_remote_path"] == "/opt/aiinfra/wheelhouse"
    assert given["wheelhouse_index_url"] == "https://download.pytorch.org/whl/cpu" and given["wheelhouse_index_url_secret"] is False
    secret = dict((key, render(value, dict(v, pytorch_index_url="https://ci:s3cret@mirror.internal/whl/cpu")))
                  for key, value in include["vars"].items())
    assert secret["wheelhouse_index_url_secret"] is True
    assert render(include["vars"]["wheelhouse_index_url"], dict(v, pytorch_wheelhouse_use_index=False)) == ""
    wheelhouse_download_renders(dict(role_vars("wheelhouse", "ubuntu-22.04"), **given), v["pytorch_requirements"])


def wheelhouse_download_renders(given, requirements):
    """The wheelhouse role's download and offline check, rendered with what a framework role gives it."""
    wheelhouse = tasks("wheelhouse", "main.yml")
    assert wheelhouse["Download the missing wheels"]["ansible.builtin.include_tasks"] == "download.yml"
    # the included file runs in the scope of the block that includes it (its vars: wheelhouse_pip_download)
    block_vars = wheelhouse["Download the missing wheels"]["vars"]
    wheelhouse.update((name, dict(task, vars=dict(block_vars, **task["vars"])))
                      for name, task in tasks("wheelhouse", "download.yml").items())
    scope = dict(given, ansible_playbook_python="/venv/bin/python", wheelhouse_tmp={"path": "/srv/.wheelhouse-download-x"},
                 ansible_facts=dict(FACTS["ubuntu-22.04"], python={"version": {"major": 3, "minor": 11}}))
    download = wheelhouse["Download the wheels with the controller's pip"]
    local = dict(scope, **download["vars"])
    local["wheelhouse_manylinux"] = render(local["wheelhouse_manylinux"], local)
    sets = render(local["wheelhouse_sets"], local)
    assert sets[0] == {"requirements": requirements, "args": []}
    no_deps = given.get("wheelhouse_requirements_no_deps") or []
    assert sets[1:] == ([{"requirements": no_deps, "args": ["--no-deps"]}] if no_deps else [])
    local["item"] = sets[0]
    argv = render(download["ansible.builtin.command"]["argv"], local)
    assert argv[:4] == ["/venv/bin/python", "-m", "pip", "download"]
    assert argv[argv.index("--python-version") + 1] == "3.11"
    # pip matches platform tags exactly: every manylinux tag up to 2.28 (tensorflow-cpu is manylinux_2_27, others 2_17,
    # 2010, 1), in both spellings
    platforms = [a[len("--platform="):] for a in argv if a.startswith("--platform=")]
    assert platforms[0] == "manylinux_2_28_x86_64" and "manylinux_2_27_x86_64" in platforms, platforms
    assert {"manylinux_2_5_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert argv[argv.index("--dest") + 1] == "/srv/.wheelhouse-download-x"  # moved into the wheelhouse whole
    if given["wheelhouse_index_url"]:
        assert argv[argv.index("--extra-index-url") + 1] == given["wheelhouse_index_url"]
    assert argv[-len(requirements):] == requirements
    assert render(download["no_log"], local) is given["wheelhouse_index_url_secret"]
    mine = dict(local, wheelhouse_platform="manylinux_2_34_aarch64")
    argv = render(download["ansible.builtin.command"]["argv"], mine)
    assert argv[argv.index("--platform") + 1] == "manylinux_2_34_aarch64" and not [a for a in argv if a.startswith("--platform=")]
    # the offline completeness check ignores the controller's own pip configuration
    check = wheelhouse["Check the wheelhouse alone satisfies the requirements (offline)"]
    argv = render(check["ansible.builtin.command"]["argv"], local)
    assert argv[argv.index("--find-links") + 1] == given["wheelhouse_path"] and "--isolated" in argv and "--no-index" in argv
    if no_deps:
        local["item"] = sets[1]
        argv = render(download["ansible.builtin.command"]["argv"], local)
        assert argv[-len(no_deps) - 1:] == ["--no-deps"] + no_deps


# -- tensorflow ------------------------------------------------------------------------------------
def tensorflow_vars(gpu=None, python="3.11", **extra):
    gpu = gpu or NO_GPU
    variables = role_vars("tensorflow", "ubuntu-22.04", preflight_gpu=gpu,
                          tensorflow_python_version={"rc": 0, "stdout": python + "\n"}, **extra)
    run_set_fact("tensorflow", "plan.yml", "Plan the package from the compatibility data", variables)
    return run_set_fact("tensorflow", "plan.yml", "Decide the requirements and pip's arguments", variables)


def test_tensorflow_cpu_node_gets_tensorflow_cpu_and_a_gpu_node_the_cuda_wheels():
    v = tensorflow_vars()
    assert v["tensorflow_plan"]["errors"] == [] and v["tensorflow_requirements"] == ["tensorflow-cpu==2.21.0"]
    assert v["tensorflow_requirements_no_deps"] == ["tf-keras~=2.21.0"]
    assert tensorflow_vars(tensorflow_keras2="no")["tensorflow_requirements_no_deps"] == []
    assert v["tensorflow_pip_args"] == []  # pip's own configuration on the node
    v = tensorflow_vars(gpu=H100_HGX, preflight_nvidia_loaded_version="570.133.20",
                        tensorflow_extra_packages="tensorflow-datasets", tensorflow_index_url="https://mirror/simple")
    assert v["tensorflow_plan"]["cuda"] == "12.5"
    assert v["tensorflow_requirements"] == ["tensorflow[and-cuda]==2.21.0", "tensorflow-datasets"]
    assert v["tensorflow_pip_args"] == ["--index-url", "https://mirror/simple"]


def test_tensorflow_plan_follows_the_planned_driver_and_the_interpreter():
    v = tensorflow_vars(gpu=H100_HGX, preflight_nvidia_loaded_version="570.133.20",
                        nvidia_driver_plan={"branch": "470", "install": True, "adopt": False})
    assert "needs driver branch 525 or newer; the node's driver is 470" in v["tensorflow_plan"]["errors"][0]
    v = tensorflow_vars(python="3.9")
    assert "has wheels for Python 3.10 to 3.13; the node's Python is 3.9" in v["tensorflow_plan"]["errors"][0]


def test_tensorflow_wheelhouse_mode():
    v = tensorflow_vars(tensorflow_wheelhouse="/srv/tf-wheels", tensorflow_wheelhouse_build="yes",
                        tensorflow_pip_extra_args="--no-cache-dir")
    assert v["tensorflow_pip_args"] == ["--no-index", "--find-links", "/opt/aiinfra/wheelhouse-tensorflow", "--no-cache-dir"]
    include = tasks("tensorflow", "apply.yml")["Stage the wheelhouse from the controller"]
    assert include["ansible.builtin.include_role"]["name"] == "aiinfra.gpu_cluster.wheelhouse"
    given = dict((key, render(value, v)) for key, value in include["vars"].items())
    assert given["wheelhouse_path"] == "/srv/tf-wheels" and given["wheelhouse_build"] is True
    assert given["wheelhouse_requirements"] == ["tensorflow-cpu==2.21.0"] and given["wheelhouse_index_url"] == ""
    assert given["wheelhouse_requirements_no_deps"] == ["tf-keras~=2.21.0"]  # Keras 2, which names `tensorflow`
    wheelhouse_download_renders(dict(role_vars("wheelhouse", "ubuntu-22.04"), **given), ["tensorflow-cpu==2.21.0"])


def test_pytorch_cu130_on_a_535_driver_is_refused():
    v = pytorch_vars(gpu=H100_HGX, pytorch_cuda_index="cu130",
                     nvidia_driver_plan={"branch": "535", "install": True, "adopt": False})
    assert "cu130 wheels (CUDA 13.0) need driver branch 580 or newer" in v["pytorch_plan"]["errors"][0]


def test_argument_specs_match_defaults():
    """Every role documents each default in meta/argument_specs.yml, with the same default value."""
    for role in ("preflight", "nvidia_driver", "cuda", "docker", "pytorch", "tensorflow"):
        with open(role_file(role, "defaults", "main.yml")) as handle:
            defaults = yaml.safe_load(handle)
        with open(role_file(role, "meta", "argument_specs.yml")) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        options = specs["main"]["options"]
        assert sorted(options) == sorted(defaults), role
        for name, value in defaults.items():
            assert name.startswith(role + "_"), name
            if "{{" not in str(value):
                assert options[name].get("default") == value, (role, name)
        if role != "preflight":
            assert specs["validate"] == specs["main"], role


# -- preflight's helpers ---------------------------------------------------------------------------
def test_package_lock_wait_sees_a_held_dpkg_lock(tmp_path):
    script = role_file("preflight", "files", "package_lock_free.py")
    lock = tmp_path / "lock-frontend"
    lock.write_text("")
    patched = tmp_path / "check.py"
    with open(script) as handle:
        source = handle.read()
    patched.write_text(source.replace('FCNTL_LOCKS = [', 'FCNTL_LOCKS = [%r, ' % str(lock), 1)
                       .replace('"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock",', '')
                       .replace('"/var/cache/apt/archives/lock", "/var/lib/rpm/.rpm.lock"', '')
                       .replace('PID_LOCKS = [', 'PID_LOCKS = [] and [', 1))
    free = subprocess.run([sys.executable, str(patched)], capture_output=True, text=True, check=False)
    assert free.returncode == 0, free.stdout + free.stderr
    # another process takes the lock the way apt does (fcntl), and holds it
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = subprocess.run([sys.executable, str(patched)], capture_output=True, text=True, check=False)
        assert busy.returncode == 1
        assert str(lock) + " held by" in busy.stdout
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert subprocess.run([sys.executable, str(patched)], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("needs, size, batches", [
    ({"n0": True, "n1": False, "n2": True, "n3": True}, 2, [["n0", "n2"], ["n3"]]),
    ({"n0": True, "n1": True, "n2": True}, 1, [["n0"], ["n1"], ["n2"]]),
    ({"n0": False, "n1": False}, 1, []),
    ({"n0": True, "n1": None}, 4, [["n0"]]),  # None: a node without a GPU never ran the check
])
def test_driver_reboots_only_the_nodes_that_need_it_in_batches(needs, size, batches):
    loop = tasks("nvidia_driver", "load.yml")["Reboot the nodes that need it, a batch at a time"]["loop"]
    hostvars = {}
    for h, need in needs.items():
        hostvars[h] = {"inventory_hostname": h}
        if need is not None:
            hostvars[h]["nvidia_driver_reboot_needed"] = need
    # the batch size as -e gives it: a string
    scope = role_vars("nvidia_driver", "debian-12", ansible_play_hosts=list(needs), hostvars=hostvars,
                      nvidia_driver_reboot_batch_size=str(size))
    assert render(loop, scope) == batches


@pytest.mark.parametrize("installed, loaded, nouveau, reboot", [
    ("535.309.01", "535.309.01", False, False),
    ("535.309.01", "535.261.03", False, True),   # upgraded under a loaded module
    ("580.82.07", "", True, True),               # nouveau holds the GPUs
    ("", "580.82.07", False, False),             # a driver installed outside packages: adopted
])
def test_driver_reboot_decision(installed, loaded, nouveau, reboot):
    decide = tasks("nvidia_driver", "load.yml")["Decide whether this node needs a reboot"]
    scope = {"nvidia_driver_installed_version": installed, "nvidia_driver_loaded_version": loaded,
             "nvidia_driver_nouveau_loaded": nouveau, "nvidia_driver_modprobe": {"skipped": True}}
    scope.update(decide["vars"])
    assert render(decide["ansible.builtin.set_fact"]["nvidia_driver_reboot_needed"], scope) is reboot


# -- what users type: every role reads its variables typed (<role>_inputs), strings as -e gives them ----------
def test_preflight_takes_strings_as_users_type_them():
    v = role_vars("preflight", "debian-12", preflight_extra_ca_certificates="/etc/ca/one.pem '/etc/ca/two.pem'",
                  preflight_require_supported_os="no", preflight_cloud_init_timeout="0",
                  preflight_package_lock_timeout="60", preflight_report="false")
    ca = tasks("preflight", "ca-Debian.yml")["Install the extra CA certificates (Debian family)"]
    assert render(ca["loop"], v) == ["/etc/ca/one.pem", "/etc/ca/two.pem"]
    main = tasks("preflight", "main.yml")
    assert render(expr(main["Fail early on an unsupported OS"]["when"]), v) is False
    assert render(expr(main["Wait for cloud-init to finish (bounded)"]["when"][1]), v) is False
    # a task's retries is an int field: ansible-core 2.16's templar gives the string, the field converts it
    assert int(render(main["Wait for the package manager's locks (bounded)"]["retries"], v)) == 12
    assert render(expr(main["Report what the node is"]["when"]), v) is False
    with pytest.raises(Exception, match="preflight_extra_ca_certificates: cannot split .* like a shell would"):
        render(ca["loop"], dict(v, preflight_extra_ca_certificates="'/etc/ca/one.pem"))


def test_nvidia_driver_takes_strings_as_users_type_them():
    v = driver_vars("debian-12", NO_GPU, nvidia_driver_install_without_gpu="yes", nvidia_driver_kernel_headers="no",
                    nvidia_driver_reboot="no", nvidia_driver_branch=535)
    assert v["nvidia_driver_plan"]["install"] is True and v["nvidia_driver_plan"]["branch"] == "535"
    setup = tasks("nvidia_driver", "setup-Debian.yml")
    assert render(expr(setup["Install the kernel headers of the running kernel"]["when"]), v) is False
    refuse = tasks("nvidia_driver", "load.yml")["Fail when a reboot is needed but not allowed"]["ansible.builtin.assert"]
    assert render(expr(refuse["that"]), dict(v, nvidia_driver_reboot_needed=True)) is False
    with pytest.raises(Exception, match="argument 'nvidia_driver_reboot_batch_size' is of type (<class ')?str('>)? and we were unable "
                                        "to convert to int"):
        render("{{ nvidia_driver_inputs }}", dict(v, nvidia_driver_reboot_batch_size="two"))


def test_cuda_takes_strings_as_users_type_them():
    v = cuda_vars("ubuntu-22.04", cuda_install="true", cuda_configure_paths="no", cuda_version=12.8,
                  nvidia_driver_plan={"branch": "570", "install": True, "adopt": False})
    assert v["cuda_plan"]["version"] == "12.8" and v["cuda_plan"]["errors"] == []
    apply = tasks("cuda", "apply.yml")["Install CUDA (cuda_install), else say that nothing is installed"]
    assert render(apply["ansible.builtin.include_tasks"]["file"], v) == "install.yml"
    assert render(apply["ansible.builtin.include_tasks"]["file"], dict(v, cuda_install="no")) == "not_installed.yml"
    install = tasks("cuda", "install.yml")
    assert render(expr(" and ".join("(%s)" % c for c in install["Put CUDA on PATH and in the loader's path"]["when"])), v) is False


def test_docker_takes_strings_as_users_type_them():
    import base64
    v = docker_vars("debian-12", gpu=H100_HGX, docker_users="alice bob", docker_nvidia_default_runtime="yes",
                    docker_daemon_options='{"data-root": "/data/docker"}', docker_verify="no")
    main = tasks("docker", "apply.yml")
    assert render(main["Add the users to the docker group"]["loop"], v) == ["alice", "bob"]
    assert render(tasks("docker", "plan.yml")["Look up the docker users"]["loop"], v) == ["alice", "bob"]
    assert render(expr(main["Check the daemon answers"]["when"][0]), v) is False
    task = tasks("docker", "daemon.yml")["Merge the settings into daemon.json"]
    scope = dict(v, docker_daemon_current={"content": base64.b64encode(b"{}").decode()})
    scope.update(task["vars"])
    assert json.loads(render(task["ansible.builtin.copy"]["content"], scope)) == {
        "data-root": "/data/docker", "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    with pytest.raises(Exception, match="give docker_users as a list"):
        render(main["Add the users to the docker group"]["loop"], dict(v, docker_users={"alice": 1}))


def test_pytorch_takes_strings_as_users_type_them():
    v = pytorch_vars(pytorch_torchvision="yes", pytorch_extra_packages="numpy==2.3.* 'tensorboard>=2,<3'",
                     pytorch_pip_extra_args="--trusted-host mirror.internal --no-cache-dir",
                     pytorch_verify_world_size="4", pytorch_verify_every_run="true")
    assert v["pytorch_requirements"] == ["torch==2.13.0+cpu", "torchvision==0.28.0+cpu", "numpy==2.3.*", "tensorboard>=2,<3"]
    assert v["pytorch_pip_args"][-3:] == ["--trusted-host", "mirror.internal", "--no-cache-dir"]
    verify = tasks("pytorch", "verify.yml")["Run the torch checks in the virtualenv"]
    assert "--world-size 4 " in render(verify["ansible.builtin.script"]["cmd"], dict(v, pytorch_plan=v["pytorch_plan"]))
    main = tasks("pytorch", "apply.yml")
    assert render(expr(main["Verify torch on the node"]["when"][2]), dict(v, pytorch_venv_created={}, pytorch_pip_install={})) is True


def test_the_watch_counts_its_deadlines_from_the_launch_round():
    """torchrun_rdzv_timeout and torchrun_timeout count from the launch round, not from the node preparation and the
    checkpoint restore before it (under load they took most of the 180 s rendezvous timeout in a CI run)."""
    watch = tasks("torchrun", "main.yml")["Watch the job on every node until it ends or anything fails"]
    started = watch["aiinfra.gpu_cluster.torchrun_watch"]["started"]
    # (ansible-core 2.16 renders it as text, 2.19 as a float: the module's float option takes either)
    assert float(render(started, {"_torchrun_started": "1000.5", "_torchrun_launched": {"started": 1177.25}})) == 1177.25
    # a launch that did not run (skipped): the attempt's start
    assert float(render(started, {"_torchrun_started": "1000.5", "_torchrun_launched": {"skipped": True}})) == 1000.5
