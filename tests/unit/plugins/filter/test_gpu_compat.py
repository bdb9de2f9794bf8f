"""The compatibility data and the decisions the filters make from it, table-driven."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.filter import gpu_compat as gpu_filter
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import gpu_compat as compat

DATA = compat.load()

H100 = "0000:18:00.0 0x10de 0x2330 0x030200"
A100 = "0000:07:00.0 0x10de 0x20b2 0x030200"
V100 = "0000:00:04.0 0x10de 0x1db1 0x030200"
B200 = "0000:1b:00.0 0x10de 0x2901 0x030200"
NVSWITCH = "0000:05:00.0 0x10de 0x22a3 0x068000"
HOST_BRIDGE = "0000:00:00.0 0x8086 0x1237 0x060000"


def gpus(*rows):
    return compat.gpu_facts([HOST_BRIDGE] + list(rows))


NO_GPU = gpus()


# -- the data file itself --------------------------------------------------------------------------
def test_data_is_consistent():
    archs = DATA["gpu_architectures"]
    for dev, info in DATA["gpu_models"].items():
        assert dev == dev.lower() and dev.startswith("0x"), dev
        assert info["architecture"] in archs, (dev, info)
    for name, info in archs.items():
        assert info["min_driver"] in DATA["driver_branches"], name
        assert set(info["kernel_modules"]) <= {"open", "proprietary"}, name
    for source, info in DATA["driver_sources"].items():
        assert info["default_branch"] in info["branches"], source
        for branch in info["branches"]:
            assert branch in DATA["driver_branches"], (source, branch)
        for os_name in info["os"]:
            assert source in DATA["operating_systems"][os_name]["driver_sources"], (source, os_name)
    for os_name, info in DATA["operating_systems"].items():
        assert info["default_driver_source"] in info["driver_sources"], os_name
        assert info["default_cuda_source"] in info["cuda_sources"], os_name
    for release, info in DATA["pytorch_indices"]["releases"].items():
        assert "cpu" in info["indices"], release
        for index in info["indices"]:
            assert index in DATA["pytorch_indices"]["indices"], (release, index)
    for index, info in DATA["pytorch_indices"]["indices"].items():
        if index != "cpu":
            assert index == "cu" + info["cuda"].replace(".", ""), index
            assert info["min_driver"] in DATA["driver_branches"], index
            assert set(info["architectures"]) <= set(archs), index
    # a driver branch runs a higher CUDA than any older branch
    ordered = sorted(DATA["driver_branches"].items(), key=lambda kv: int(kv[0]))
    cudas = [compat.version_tuple(info["cuda"]) for branch, info in ordered]
    assert cudas == sorted(cudas)


@pytest.mark.parametrize("text, expected", [
    ("12.8", (12, 8)), ("535.309.01", (535, 309, 1)), ("2.13.0+cpu", (2, 13, 0)), ("", ()), (None, ()), (580, (580,)),
])
def test_version_tuple(text, expected):
    assert compat.version_tuple(text) == expected


# -- operating systems -----------------------------------------------------------------------------
@pytest.mark.parametrize("dist, version, major, key, supported", [
    ("Debian", "12.15", "12", "debian-12", True),
    ("Ubuntu", "22.04", "22", "ubuntu-22.04", True),
    ("Ubuntu", "24.04", "24", "ubuntu-24.04", True),
    ("RedHat", "9.4", "9", "rhel-9", True),
    ("Rocky", "9.3", "9", "rhel-9", True),
    ("AlmaLinux", "9.5", "9", "rhel-9", True),
    ("Ubuntu", "20.04", "20", "ubuntu-20.04", False),
    ("Debian", "11.9", "11", "debian-11", False),
    ("RedHat", "8.10", "8", "redhat-8", False),
    ("CentOS", "7.9", "7", "centos-7", False),
])
def test_os_support(dist, version, major, key, supported):
    res = compat.os_support(dist, version, major)
    assert res["key"] == key
    assert res["supported"] is supported
    if supported:
        assert res["errors"] == []
    else:
        assert len(res["errors"]) == 1
        assert ("%s %s is not supported" % (dist, version)) in res["errors"][0]
        assert "debian-12, rhel-9, ubuntu-22.04, ubuntu-24.04" in res["errors"][0]


# -- GPUs from PCI ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rows, present, count, archs, models, nvswitch", [
    ([HOST_BRIDGE], False, 0, [], [], False),
    ([H100] * 8 + [NVSWITCH] * 4, True, 8, ["hopper"], ["H100-SXM5-80GB"], True),
    ([A100, "0000:07:00.1 0x10de 0x1aef 0x040300"], True, 1, ["ampere"], ["A100-SXM4-80GB"], False),  # + HDMI audio
    ([V100, A100], True, 2, ["ampere", "volta"], ["A100-SXM4-80GB", "Tesla V100-SXM2-16GB"], False),
    (["0000:03:00.0 0x10de 0x9999 0x030000"], True, 1, ["unknown"], ["NVIDIA device 0x9999"], False),
    ([{"slot": "0000:01:00.0", "vendor": "0x10DE", "device": "0x2901", "class": "0x030200"}], True, 1, ["blackwell"],
     ["B200"], False),
])
def test_gpu_facts(rows, present, count, archs, models, nvswitch):
    facts = compat.gpu_facts(rows)
    assert (facts["present"], facts["count"], facts["architectures"], facts["models"], facts["nvswitch"]) == (
        present, count, archs, models, nvswitch)


def test_gpu_facts_architecture_override():
    facts = compat.gpu_facts(["0000:03:00.0 0x10de 0x9999 0x030200"], architecture_override="hopper")
    assert facts["architectures"] == ["hopper"]


# -- driver ----------------------------------------------------------------------------------------
DRIVER_OK = [
    # id, os, gpu, kwargs, expected subset of the plan
    ("debian-no-gpu", "debian-12", NO_GPU, {},
     {"install": False, "source": "debian", "branch": "535", "cuda": "12.2", "kernel_modules": "proprietary",
      "reason": "no NVIDIA GPU on this node; nothing to install"}),
    ("debian-bake", "debian-12", NO_GPU, {"install_without_gpu": True},
     {"install": True, "packages": ["nvidia-kernel-dkms", "libcuda1", "libnvidia-ml1", "nvidia-smi",
                                    "nvidia-persistenced", "firmware-misc-nonfree"],
      "repo": {"type": "debian", "components": ["main", "contrib", "non-free", "non-free-firmware"],
               "codename": "bookworm"}}),
    ("debian-a100", "debian-12", gpus(A100), {"kernel": "6.1.0-28-amd64"},
     {"install": True, "kernel_modules": "proprietary", "headers": ["linux-headers-6.1.0-28-amd64"],
      "reason": "1 GPU(s): A100-SXM4-80GB"}),
    ("debian-cuda-repo-h100", "debian-12", gpus(H100), {"source": "cuda_repo"},
     {"branch": "580", "kernel_modules": "open", "packages": ["nvidia-open-580"],
      "repo": {"type": "cuda_repo", "name": "debian12",
               "url": "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/",
               "key_url": "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/3bf863cc.pub"}}),
    ("ubuntu2204-hgx-h100", "ubuntu-22.04", gpus(*([H100] * 8 + [NVSWITCH] * 4)), {"kernel": "5.15.0-1063-aws"},
     {"source": "cuda_repo", "branch": "580", "cuda": "13.0", "kernel_modules": "open", "packages": ["nvidia-open-580"],
      "fabricmanager": "nvidia-fabricmanager-580", "headers": ["linux-headers-5.15.0-1063-aws"],
      "repo": {"type": "cuda_repo", "name": "ubuntu2204",
               "url": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/",
               "key_url": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/3bf863cc.pub"}}),
    ("ubuntu2404-v100", "ubuntu-24.04", gpus(V100), {},
     {"branch": "580", "kernel_modules": "proprietary", "packages": ["cuda-drivers-580"]}),
    ("ubuntu2404-a100-550", "ubuntu-24.04", gpus(A100), {"branch": "550"},
     {"branch": "550", "cuda": "12.4", "kernel_modules": "proprietary", "packages": ["cuda-drivers-550"]}),
    ("ubuntu2204-b200", "ubuntu-22.04", gpus(B200), {"branch": "570"},
     {"kernel_modules": "open", "packages": ["nvidia-open-570"]}),
    ("ubuntu2204-arm", "ubuntu-22.04", gpus(H100), {"arch": "sbsa"},
     {"repo": {"type": "cuda_repo", "name": "ubuntu2204",
               "url": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/sbsa/",
               "key_url": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/sbsa/3bf863cc.pub"}}),
    ("rhel9-a100-570", "rhel-9", gpus(A100), {"branch": "570", "kernel": "5.14.0-427.el9.x86_64"},
     {"kernel_modules": "open", "packages": ["@nvidia-driver:570-open"], "hold": [],
      "headers": ["kernel-devel-5.14.0-427.el9.x86_64", "kernel-headers-5.14.0-427.el9.x86_64"],
      "repo": {"type": "cuda_repo", "name": "rhel9",
               "url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/",
               "key_url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/D42D0685.pub"}}),
    ("rhel9-a100-550", "rhel-9", gpus(A100), {"branch": "550"},
     {"kernel_modules": "proprietary", "packages": ["@nvidia-driver:550-dkms"]}),
    ("rhel9-hgx-fabricmanager", "rhel-9", gpus(H100, NVSWITCH), {}, {"fabricmanager": "nvidia-fabric-manager"}),
    ("adopt-loaded-580", "ubuntu-22.04", gpus(H100), {"loaded_version": "580.82.07"},
     {"adopt": True, "install": False, "branch": "580", "cuda": "13.0", "packages": []}),
    ("adopt-explicit-same", "debian-12", gpus(H100), {"loaded_version": "535.309.01", "branch": "535"},
     {"adopt": True, "branch": "535"}),
    ("replace-loaded", "ubuntu-22.04", gpus(H100), {"loaded_version": "535.183.01", "branch": "580"},
     {"adopt": False, "install": True, "branch": "580"}),
]


@pytest.mark.parametrize("os_name, gpu, kwargs, expected", [c[1:] for c in DRIVER_OK], ids=[c[0] for c in DRIVER_OK])
def test_driver_plan(os_name, gpu, kwargs, expected):
    plan = compat.driver_plan(os_name, gpu=gpu, **kwargs)
    assert plan["errors"] == []
    for key, value in expected.items():
        assert plan[key] == value, key


DRIVER_BAD = [
    ("branch-not-on-debian", "debian-12", NO_GPU, {"branch": "580"},
     "driver branch 580 does not exist for debian-12 from debian (branches there: 535); set nvidia_driver_branch to "
     "one of them or nvidia_driver_source: cuda_repo"),
    ("branch-unknown", "ubuntu-22.04", NO_GPU, {"branch": "999"}, "driver branch 999 does not exist for ubuntu-22.04"),
    ("debian-source-on-rhel", "rhel-9", NO_GPU, {"source": "debian"},
     "nvidia_driver_source 'debian' is not available on rhel-9 (available: cuda_repo)"),
    ("v100-open", "ubuntu-24.04", gpus(V100), {"kernel_modules": "open"},
     "volta GPUs (Tesla V100-SXM2-16GB) cannot use the open kernel modules; set nvidia_driver_kernel_modules: proprietary"),
    ("b200-proprietary", "ubuntu-22.04", gpus(B200), {"kernel_modules": "proprietary"},
     "blackwell GPUs (B200) cannot use the proprietary kernel modules; set nvidia_driver_kernel_modules: open"),
    ("b200-old-branch", "ubuntu-22.04", gpus(B200), {"branch": "550"},
     "blackwell GPUs need driver branch 570 or newer; nvidia_driver_branch is 550"),
    ("b200-debian-nonfree", "debian-12", gpus(B200), {}, "blackwell GPUs need driver branch 570 or newer"),
    ("hgx-debian-nonfree", "debian-12", gpus(A100, NVSWITCH), {},
     "needs NVIDIA fabric manager, which the debian source does not ship; use nvidia_driver_source: cuda_repo"),
    ("open-from-debian", "debian-12", gpus(A100), {"kernel_modules": "open"},
     "the debian source on debian-12 ships no open kernel modules"),
    ("unsupported-os", "ubuntu-20.04", NO_GPU, {}, "ubuntu-20.04 is not a supported OS for the NVIDIA driver"),
]


@pytest.mark.parametrize("os_name, gpu, kwargs, message", [c[1:] for c in DRIVER_BAD], ids=[c[0] for c in DRIVER_BAD])
def test_driver_plan_refuses(os_name, gpu, kwargs, message):
    plan = compat.driver_plan(os_name, gpu=gpu, **kwargs)
    assert any(message in err for err in plan["errors"]), plan["errors"]


def test_driver_plan_unknown_gpu_warns():
    plan = compat.driver_plan("ubuntu-22.04", gpu=gpus("0000:03:00.0 0x10de 0x9999 0x030200"))
    assert plan["errors"] == [] and plan["install"]
    assert "not in the compatibility data" in plan["warnings"][0]


# -- CUDA ------------------------------------------------------------------------------------------
CUDA_OK = [
    ("debian-auto", "debian-12", {"version": "auto", "driver_branch": "535"},
     {"version": "11.8", "source": "debian", "packages": ["nvidia-cuda-toolkit"], "bin_dir": "/usr/bin", "lib_dir": ""}),
    ("debian-runtime", "debian-12", {"version": "11.8", "component": "runtime"}, {"packages": ["libcudart11.0"]}),
    ("debian-cuda-repo", "debian-12", {"version": "12.8", "source": "cuda_repo", "driver_branch": "570"},
     {"packages": ["cuda-toolkit-12-8"], "root": "/usr/local/cuda-12.8"}),
    ("ubuntu-12.8", "ubuntu-22.04", {"version": "12.8", "driver_branch": "570"},
     {"source": "cuda_repo", "packages": ["cuda-toolkit-12-8"], "bin_dir": "/usr/local/cuda-12.8/bin",
      "lib_dir": "/usr/local/cuda-12.8/lib64"}),
    ("ubuntu-auto-535", "ubuntu-22.04", {"version": "auto", "driver_branch": "535"}, {"version": "12.2"}),
    ("ubuntu-runtime", "ubuntu-24.04", {"version": "12.9", "component": "runtime", "driver_branch": "580"},
     {"packages": ["cuda-cudart-12-9"]}),
    ("rhel-13.0", "rhel-9", {"version": "13.0", "driver_branch": "580"},
     {"packages": ["cuda-toolkit-13-0"], "lib_dir": "/usr/local/cuda-13.0/lib64",
      "repo": {"type": "cuda_repo", "name": "rhel9",
               "url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/",
               "key_url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/D42D0685.pub"}}),
    ("no-driver-known", "ubuntu-22.04", {"version": "13.0"}, {"version": "13.0"}),
]


@pytest.mark.parametrize("os_name, kwargs, expected", [c[1:] for c in CUDA_OK], ids=[c[0] for c in CUDA_OK])
def test_cuda_plan(os_name, kwargs, expected):
    plan = compat.cuda_plan(os_name, **kwargs)
    assert plan["errors"] == []
    for key, value in expected.items():
        assert plan[key] == value, key


CUDA_BAD = [
    ("newer-than-driver", "ubuntu-22.04", {"version": "12.8", "driver_branch": "535"},
     "CUDA 12.8 is newer than driver branch 535 supports (up to CUDA 12.2); set cuda_version to 12.2 or older, or "
     "nvidia_driver_branch to 570 or newer"),
    ("13-on-570", "rhel-9", {"version": "13.0", "driver_branch": "570"}, "CUDA 13.0 is newer than driver branch 570"),
    ("not-from-debian", "debian-12", {"version": "12.8"}, "CUDA 12.8 is not available from debian on debian-12"),
    ("repo-starts-later", "debian-12", {"version": "11.8", "source": "cuda_repo"},
     "NVIDIA's CUDA repository for debian-12 starts at CUDA 12.2"),
    ("nothing-fits", "ubuntu-24.04", {"version": "auto", "driver_branch": "535"},
     "no CUDA toolkit from cuda_repo on ubuntu-24.04 runs on driver branch 535"),
    ("debian-source-on-ubuntu", "ubuntu-22.04", {"version": "11.8", "source": "debian"},
     "cuda_source 'debian' is not available on ubuntu-22.04"),
    ("unsupported-os", "debian-11", {"version": "11.8"}, "debian-11 is not a supported OS"),
]


@pytest.mark.parametrize("os_name, kwargs, message", [c[1:] for c in CUDA_BAD], ids=[c[0] for c in CUDA_BAD])
def test_cuda_plan_refuses(os_name, kwargs, message):
    plan = compat.cuda_plan(os_name, **kwargs)
    assert any(message in err for err in plan["errors"]), plan["errors"]


# -- PyTorch ---------------------------------------------------------------------------------------
TORCH_OK = [
    ("cpu-node", "2.13.0", {}, {"index": "cpu", "requirement": "torch==2.13.0+cpu",
                                "index_url": "https://download.pytorch.org/whl/cpu", "torchvision": "0.28.0"}),
    ("h100-580", "2.13.0", {"driver_branch": "580", "architectures": ["hopper"], "gpu_present": True},
     {"index": "cu130", "cuda": "13.0", "requirement": "torch==2.13.0+cu130"}),
    ("h100-570", "2.13.0", {"driver_branch": "570", "architectures": ["hopper"], "gpu_present": True},
     {"index": "cu128"}),
    ("v100-580-no-cu130", "2.13.0", {"driver_branch": "580", "architectures": ["volta"], "gpu_present": True},
     {"index": "cu128"}),
    ("a100-535", "2.8.0", {"driver_branch": "535", "architectures": ["ampere"], "gpu_present": True},
     {"index": "cu129", "torchvision": "0.23.0"}),
    ("b200-2.7", "2.7.1", {"driver_branch": "570", "architectures": ["blackwell"], "gpu_present": True},
     {"index": "cu128"}),
    ("explicit-cpu-on-gpu", "2.13.0", {"index": "cpu", "driver_branch": "580", "architectures": ["hopper"],
                                       "gpu_present": True}, {"index": "cpu"}),
    ("bake-cu128-no-gpu", "2.13.0", {"index": "cu128"}, {"index": "cu128"}),
]


@pytest.mark.parametrize("version, kwargs, expected", [c[1:] for c in TORCH_OK], ids=[c[0] for c in TORCH_OK])
def test_pytorch_plan(version, kwargs, expected):
    plan = compat.pytorch_plan(version, **kwargs)
    assert plan["errors"] == []
    for key, value in expected.items():
        assert plan[key] == value, key


TORCH_BAD = [
    ("no-such-pair", "2.13.0", {"index": "cu118"},
     "torch 2.13.0 has no cu118 wheels (it publishes cpu, cu128, cu130); set pytorch_cuda_index to one of them"),
    ("cu130-old-driver", "2.13.0", {"index": "cu130", "driver_branch": "570", "gpu_present": True},
     "cu130 wheels (CUDA 13.0) need driver branch 580 or newer; the node's driver is 570"),
    ("cu130-volta", "2.13.0", {"index": "cu130", "driver_branch": "580", "architectures": ["volta"],
                               "gpu_present": True}, "cu130 wheels of torch 2.13 carry no kernels for volta GPUs"),
    ("blackwell-2.5", "2.5.1", {"driver_branch": "570", "architectures": ["blackwell"], "gpu_present": True},
     "no CUDA wheel of torch 2.5.1 fits this node"),
    ("unknown-release", "3.0.0", {}, "torch 3.0.0 is not in the compatibility data"),
    ("unknown-index", "2.13.0", {"index": "rocm6.2"}, "unknown wheel index 'rocm6.2'"),
]


@pytest.mark.parametrize("version, kwargs, message", [c[1:] for c in TORCH_BAD], ids=[c[0] for c in TORCH_BAD])
def test_pytorch_plan_refuses(version, kwargs, message):
    plan = compat.pytorch_plan(version, **kwargs)
    assert any(message in err for err in plan["errors"]), plan["errors"]


# -- TensorFlow ------------------------------------------------------------------------------------
TF_OK = [
    ("cpu-node", "2.21.0", {"python_version": "3.11"},
     {"variant": "cpu", "package": "tensorflow-cpu", "requirement": "tensorflow-cpu==2.21.0", "cuda": "",
      "keras2": "tf-keras~=2.21.0"}),
    ("h100-550", "2.21.0", {"driver_branch": "550", "architectures": ["hopper"], "gpu_present": True},
     {"variant": "cuda", "requirement": "tensorflow[and-cuda]==2.21.0", "cuda": "12.5", "cudnn": "9.3"}),
    ("a100-535-2.16", "2.16.2", {"driver_branch": "535", "architectures": ["ampere"], "gpu_present": True,
                                 "python_version": "3.12"}, {"cuda": "12.3", "cudnn": "8.9"}),
    ("explicit-cpu-on-gpu", "2.21.0", {"variant": "cpu", "driver_branch": "580", "architectures": ["hopper"],
                                       "gpu_present": True}, {"requirement": "tensorflow-cpu==2.21.0"}),
    ("bake-cuda-no-gpu", "2.21.0", {"variant": "cuda"}, {"requirement": "tensorflow[and-cuda]==2.21.0"}),
    ("blackwell-ptx-580", "2.21.0", {"driver_branch": "580", "architectures": ["blackwell"], "gpu_present": True},
     {"variant": "cuda"}),
]


@pytest.mark.parametrize("version, kwargs, expected", [c[1:] for c in TF_OK], ids=[c[0] for c in TF_OK])
def test_tensorflow_plan(version, kwargs, expected):
    plan = compat.tensorflow_plan(version, **kwargs)
    assert plan["errors"] == []
    for key, value in expected.items():
        assert plan[key] == value, key


def test_tensorflow_plan_warns_what_fits_but_is_worth_knowing():
    assert "tensorflow-cpu on a node with NVIDIA GPUs" in compat.tensorflow_plan(
        "2.21.0", variant="cpu", gpu_present=True)["warnings"][0]
    assert "no kernels built for blackwell GPUs" in compat.tensorflow_plan(
        "2.21.0", driver_branch="580", architectures=["blackwell"], gpu_present=True)["warnings"][0]


TF_BAD = [
    ("unknown-release", "3.0.0", {}, "TensorFlow 3.0.0 is not in the compatibility data"),
    ("python-too-old", "2.21.0", {"python_version": "3.9"},
     "TensorFlow 2.21.0 has wheels for Python 3.10 to 3.13; the node's Python is 3.9"),
    ("python-too-new", "2.15.1", {"python_version": "3.12"}, "has wheels for Python 3.9 to 3.11"),
    ("old-driver", "2.21.0", {"driver_branch": "470", "gpu_present": True},
     "TensorFlow 2.21.0 is built for CUDA 12.5, which needs driver branch 525 or newer; the node's driver is 470"),
    ("blackwell-ptx-old-driver", "2.21.0", {"driver_branch": "535", "architectures": ["blackwell"],
                                            "gpu_present": True},
     "carries no kernels built for blackwell GPUs: they run its PTX through the driver's JIT compiler (a slow first "
     "start), which needs driver branch 555 or newer; the node's is 535"),
    ("unknown-variant", "2.21.0", {"variant": "rocm"}, "unknown tensorflow_variant 'rocm'"),
]


@pytest.mark.parametrize("version, kwargs, message", [c[1:] for c in TF_BAD], ids=[c[0] for c in TF_BAD])
def test_tensorflow_plan_refuses(version, kwargs, message):
    plan = compat.tensorflow_plan(version, **kwargs)
    assert any(message in err for err in plan["errors"]), plan["errors"]


# -- the filter plugin -----------------------------------------------------------------------------
def test_filter_plugin_exposes_the_decisions():
    filters = gpu_filter.FilterModule().filters()
    assert sorted(filters) == ["gpu_cuda_plan", "gpu_driver_plan", "gpu_facts", "gpu_loaded_driver_version",
                               "gpu_os_support", "gpu_pytorch_plan", "gpu_tensorflow_plan"]
    assert filters["gpu_loaded_driver_version"]("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.309.01  Thu") == \
        "535.309.01"
    assert filters["gpu_loaded_driver_version"]("") == ""
    assert filters["gpu_facts"]([H100], "hopper")["count"] == 1
    assert filters["gpu_os_support"]("Rocky", "9.4", "9")["key"] == "rhel-9"
    assert filters["gpu_driver_plan"]("debian-12", gpu=NO_GPU)["branch"] == "535"
    assert filters["gpu_cuda_plan"]("debian-12", version="auto")["version"] == "11.8"
    assert filters["gpu_pytorch_plan"]("2.13.0")["index"] == "cpu"
    assert filters["gpu_tensorflow_plan"]("2.21.0")["requirement"] == "tensorflow-cpu==2.21.0"


def test_filter_plugin_reports_a_broken_data_file(tmp_path, monkeypatch):
    from ansible.errors import AnsibleFilterError

    bad = tmp_path / "gpu_compat.yml"
    bad.write_text("schema: 2\n")
    monkeypatch.setattr(compat, "DATA_FILE", str(bad))
    with pytest.raises(AnsibleFilterError, match="not a schema 1 compatibility file"):
        gpu_filter.FilterModule().filters()["gpu_pytorch_plan"]("2.13.0")
