# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU / driver / CUDA / PyTorch compatibility decisions, read from ``data/gpu_compat.yml``.

Pure functions (no Ansible objects): the filter plugin ``aiinfra.gpu_cluster.gpu_compat`` exposes
them to the roles and the unit tests call them directly. Every ``*_plan`` function returns a dict
with ``errors`` (each names the conflict and the fix; a role asserts the list is empty before it
installs anything) and ``warnings`` next to its decisions.
"""

from __future__ import annotations

import os
import re

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import datafile

DATA_FILE = os.path.join(datafile.DATA_DIR, "gpu_compat.yml")

NVIDIA_VENDOR = "0x10de"
# PCI base classes: 0x03 display (0x0300 VGA, 0x0302 3D controller), 0x0680 other bridge (NVSwitch)
DISPLAY_CLASS_PREFIX = "0x03"


class CompatDataError(Exception):
    """The data file is missing or malformed."""


def load(path=None):
    """The compatibility table (parsed once per path)."""
    return datafile.load(path or DATA_FILE, "compatibility", CompatDataError)


def version_tuple(value):
    """'12.8' -> (12, 8); '535.309.01' -> (535, 309, 1); None/'' -> ()."""
    if value is None or value == "":
        return ()
    parts = []
    for piece in str(value).strip().split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if digits == "":
            break
        parts.append(int(digits))
    return tuple(parts)


def branch_of(version):
    """'535.309.01' -> '535' (a driver version's branch); '' when unknown."""
    parts = version_tuple(version)
    return str(parts[0]) if parts else ""


def _fmt(template, **values):
    return template.format(**values) if isinstance(template, str) else template


# -- operating systems ------------------------------------------------------------------------------
def os_key(distribution, version, major=None):
    """The data's key for an OS: ubuntu-22.04, debian-12, rhel-9 (rebuilds mapped to their parent)."""
    dist = str(distribution or "").strip().lower().replace(" ", "")
    if dist in ("redhatenterpriselinux", "rhel"):
        dist = "redhat"
    ver = str(version or "").strip()
    if dist != "ubuntu":
        ver = str(major or ver.split(".", maxsplit=1)[0])
    key = "%s-%s" % (dist, ver)
    return load()["os_aliases"].get(key, key)


def os_support(distribution, version, major=None, data=None):
    data = data or load()
    key = os_key(distribution, version, major)
    entry = data["operating_systems"].get(key)
    result = {"key": key, "supported": entry is not None, "errors": [], "warnings": []}
    if entry is None:
        result["errors"].append(
            "%s %s is not supported: the GPU node roles support %s. Use one of those images for the nodes "
            "(or add the OS to data/gpu_compat.yml with its package sources)." % (
                distribution, version, ", ".join(sorted(data["operating_systems"]))))
        return result
    result.update(entry)
    return result


# -- GPUs from PCI ----------------------------------------------------------------------------------
def _pci_rows(rows):
    """Accept 'slot vendor device class' lines (sysfs dump) or dicts with those keys."""
    out = []
    if isinstance(rows, str):
        rows = rows.splitlines()
    for row in rows or []:
        if isinstance(row, dict):
            slot, vendor, device, klass = (row.get("slot", ""), row.get("vendor", ""), row.get("device", ""),
                                           row.get("class", ""))
        else:
            fields = str(row).split()
            if len(fields) < 4:
                continue
            slot, vendor, device, klass = fields[:4]
        out.append({"slot": slot, "vendor": vendor.lower(), "device": device.lower(), "class": klass.lower()})
    return out


def gpu_facts(rows, architecture_override=None, data=None):
    """GPU facts from PCI devices: model, count, architecture(s), NVSwitch present."""
    data = data or load()
    gpus, switches = [], []
    for dev in _pci_rows(rows):
        if dev["vendor"] != NVIDIA_VENDOR:
            continue
        if dev["device"] in data["nvswitch_device_ids"]:
            switches.append(dev["slot"])
            continue
        if not dev["class"].startswith(DISPLAY_CLASS_PREFIX):
            continue  # audio functions, USB-C controllers of consumer boards, ...
        known = data["gpu_models"].get(dev["device"], {})
        arch = architecture_override or known.get("architecture", "unknown")
        gpus.append({"slot": dev["slot"], "device_id": dev["device"],
                     "model": known.get("model", "NVIDIA device %s" % dev["device"]), "architecture": arch})
    archs = sorted(set(g["architecture"] for g in gpus))
    models = sorted(set(g["model"] for g in gpus))
    return {
        "present": bool(gpus),
        "count": len(gpus),
        "gpus": gpus,
        "models": models,
        "architectures": archs,
        "nvswitch": bool(switches),
        "nvswitch_count": len(switches),
    }


# -- driver -----------------------------------------------------------------------------------------
def driver_cuda(branch, data=None):
    """The highest CUDA a driver branch runs ('' when the branch is unknown)."""
    data = data or load()
    return (data["driver_branches"].get(str(branch)) or {}).get("cuda", "")


def repository(source, osinfo, arch, data, mgr=None):
    """The package repository the driver and CUDA come from (one file on the node, whichever role adds it):
    Debian's non-free components, or NVIDIA's CUDA repository for this OS and architecture."""
    src = data["driver_sources"][source]
    if source == "debian":
        return {"type": "debian", "components": list(src["components"]), "codename": osinfo.get("codename")}
    base = _fmt(src["url"], repo=osinfo["cuda_repo"], arch=arch)
    mgr = mgr or ("apt" if osinfo["family"] == "Debian" else "dnf")
    return {"type": "cuda_repo", "url": base, "key_url": base + src[mgr]["key"], "name": osinfo["cuda_repo"]}


# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.309.01  ..." /
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build ..."
_LOADED_DRIVER = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9]+\.[0-9.]+)")


def loaded_driver_version(proc_version):
    """The driver version in /proc/driver/nvidia/version's text, or "" (nothing loaded)."""
    match = _LOADED_DRIVER.search(proc_version or "")
    return match.group(1) if match else ""


def driver_plan(os_name, gpu=None, branch="auto", source="auto", kernel_modules="auto",
                install_without_gpu=False, loaded_version="", kernel="", arch="x86_64", pkg_mgr=None,
                data=None):
    """What nvidia_driver installs on a node, or why it must not.

    ``loaded_version`` is the running driver (/proc/driver/nvidia/version): with ``branch=auto`` a
    node that already runs a known driver keeps it (install nothing); with an explicit branch equal to
    the loaded one the node is adopted as is too.
    """
    data = data or load()
    gpu = gpu or gpu_facts([], data=data)
    plan = {"errors": [], "warnings": [], "install": False, "adopt": False, "reason": "", "source": "",
            "branch": "", "cuda": "", "kernel_modules": "", "packages": [], "hold": [], "headers": [],
            "fabricmanager": "", "repo": {}, "os": os_name}
    osinfo = data["operating_systems"].get(os_name)
    if osinfo is None:
        plan["errors"].append("%s is not a supported OS for the NVIDIA driver (supported: %s)" % (
            os_name, ", ".join(sorted(data["operating_systems"]))))
        return plan
    family_mgr = pkg_mgr or ("apt" if osinfo["family"] == "Debian" else "dnf")

    loaded_branch = branch_of(loaded_version)
    branch = str(branch or "auto")
    if loaded_branch and branch in ("auto", loaded_branch):
        plan.update(adopt=True, branch=loaded_branch, cuda=driver_cuda(loaded_branch, data),
                    reason="driver %s is loaded and working; kept as is" % loaded_version)
        if not plan["cuda"]:
            plan["warnings"].append("driver branch %s is not in the compatibility data; CUDA checks are "
                                    "skipped for it" % loaded_branch)
        return plan

    source = str(source or "auto")
    if source == "auto":
        source = osinfo["default_driver_source"]
    if source not in osinfo["driver_sources"]:
        plan["errors"].append(
            "nvidia_driver_source '%s' is not available on %s (available: %s)" % (
                source, os_name, ", ".join(osinfo["driver_sources"])))
        return plan
    src = data["driver_sources"][source]
    plan["source"] = source
    if branch == "auto":
        branch = src["default_branch"]
    plan["branch"] = branch
    if branch not in src["branches"]:
        plan["errors"].append(
            "driver branch %s does not exist for %s from %s (branches there: %s); set nvidia_driver_branch to "
            "one of them%s" % (branch, os_name, source, ", ".join(src["branches"]),
                               " or nvidia_driver_source: cuda_repo" if source != "cuda_repo" and
                               "cuda_repo" in osinfo["driver_sources"] else ""))
        return plan
    plan["cuda"] = driver_cuda(branch, data)

    # the GPU architecture decides the driver range and the kernel-module flavour
    archs = [a for a in gpu.get("architectures", []) if a != "unknown"]
    if "unknown" in gpu.get("architectures", []):
        plan["warnings"].append("GPU(s) %s are not in the compatibility data; set preflight_gpu_architecture "
                                "to check them" % ", ".join(m for m in gpu.get("models", [])))
    allowed = list(src["kernel_modules"])
    for arch_name in archs:
        info = data["gpu_architectures"].get(arch_name)
        if info is None:
            plan["errors"].append("unknown GPU architecture '%s' (known: %s)" % (
                arch_name, ", ".join(sorted(data["gpu_architectures"]))))
            continue
        if version_tuple(branch) < version_tuple(info["min_driver"]):
            plan["errors"].append("%s GPUs need driver branch %s or newer; nvidia_driver_branch is %s" % (
                arch_name, info["min_driver"], branch))
        if info.get("max_driver") and version_tuple(branch) > version_tuple(info["max_driver"]):
            plan["errors"].append(
                "%s GPUs are not supported after driver branch %s; nvidia_driver_branch is %s (set it to %s or older)"
                % (arch_name, info["max_driver"], branch, info["max_driver"]))
        allowed = [m for m in allowed if m in info["kernel_modules"]]

    flavour = str(kernel_modules or "auto")
    if flavour == "auto":
        if not allowed:
            plan["errors"].append(
                "no kernel-module flavour fits %s on %s from %s (the GPUs accept %s, the source ships %s)%s" % (
                    "/".join(archs), os_name, source,
                    "/".join(sorted(set(m for a in archs for m in data["gpu_architectures"][a]["kernel_modules"]))),
                    "/".join(src["kernel_modules"]),
                    "; use nvidia_driver_source: cuda_repo" if source != "cuda_repo" else ""))
            return plan
        if archs:
            prefer_open = "open" in allowed and all(
                data["gpu_architectures"][a]["kernel_modules"] == ["open"] or (
                    data["gpu_architectures"][a].get("open_default_from") and
                    version_tuple(branch) >= version_tuple(data["gpu_architectures"][a]["open_default_from"]))
                for a in archs)
        else:
            prefer_open = "open" in allowed and version_tuple(branch) >= (560,)
        flavour = "open" if prefer_open else ("proprietary" if "proprietary" in allowed else allowed[0])
    elif flavour not in ("open", "proprietary"):
        plan["errors"].append("nvidia_driver_kernel_modules must be auto, open or proprietary (got %s)" % flavour)
        return plan
    else:
        for arch_name in archs:
            accepted = data["gpu_architectures"][arch_name]["kernel_modules"]
            if flavour not in accepted:
                models = ", ".join(g["model"] for g in gpu.get("gpus", []) if g["architecture"] == arch_name)
                plan["errors"].append(
                    "%s GPUs (%s) cannot use the %s kernel modules; set nvidia_driver_kernel_modules: %s (or auto)" % (
                        arch_name, models or arch_name, flavour, accepted[0]))
        if flavour not in src["kernel_modules"]:
            plan["errors"].append("the %s source on %s ships no %s kernel modules; use nvidia_driver_source: "
                                  "cuda_repo or nvidia_driver_kernel_modules: %s" % (
                                      source, os_name, flavour, src["kernel_modules"][0]))
    plan["kernel_modules"] = flavour

    if gpu.get("nvswitch"):
        fm = src.get("fabricmanager") if source == "debian" else src.get(family_mgr, {}).get("fabricmanager")
        if not fm:
            plan["errors"].append("this node has NVSwitch (HGX board) and needs NVIDIA fabric manager, which the "
                                  "%s source does not ship; use nvidia_driver_source: cuda_repo" % source)
        else:
            plan["fabricmanager"] = _fmt(fm, branch=branch)

    values = {"branch": branch, "kernel": kernel or "{kernel}"}
    if source == "debian":
        pkgs = src["packages"].get(flavour, [])
        plan["packages"] = [_fmt(p, **values) for p in pkgs]
        plan["hold"] = list(src["hold"])
        plan["headers"] = [_fmt(h, **values) for h in src["headers"]]
        plan["repo"] = repository("debian", osinfo, arch, data)
    else:
        mgr = src[family_mgr]
        plan["packages"] = [_fmt(p, **values) for p in mgr["packages"][flavour]]
        plan["hold"] = [_fmt(p, **values) for p in mgr["hold"]]
        plan["headers"] = [_fmt(h, **values) for h in mgr["headers"]]
        plan["repo"] = repository("cuda_repo", osinfo, arch, data, family_mgr)

    if gpu.get("present"):
        plan["install"] = True
        plan["reason"] = "%d GPU(s): %s" % (gpu.get("count", 0), ", ".join(gpu.get("models", [])))
    elif install_without_gpu:
        plan["install"] = True
        plan["reason"] = "no NVIDIA GPU on this node; installing anyway (nvidia_driver_install_without_gpu)"
    else:
        plan["reason"] = "no NVIDIA GPU on this node; nothing to install"
    return plan


# -- CUDA toolkit -----------------------------------------------------------------------------------
def cuda_plan(os_name, version, source="auto", component="toolkit", driver_branch="", arch="x86_64", data=None):
    """Which packages carry CUDA ``version`` on ``os_name`` and whether the driver can run it."""
    data = data or load()
    plan = {"errors": [], "warnings": [], "version": str(version), "source": "", "packages": [], "root": "",
            "bin_dir": "", "lib_dir": "", "repo": {}, "driver_branch": str(driver_branch or "")}
    osinfo = data["operating_systems"].get(os_name)
    if osinfo is None:
        plan["errors"].append("%s is not a supported OS for the CUDA toolkit" % os_name)
        return plan
    source = osinfo["default_cuda_source"] if source in ("auto", "", None) else source
    if source not in osinfo["cuda_sources"]:
        plan["errors"].append("cuda_source '%s' is not available on %s (available: %s)" % (
            source, os_name, ", ".join(osinfo["cuda_sources"])))
        return plan
    plan["source"] = source
    kits = data["cuda_toolkits"][source]
    version = str(version or "auto")
    if version == "auto":
        # the newest toolkit the source has for this OS and the driver runs
        first = kits.get("first_version", {}).get(os_name, "0")
        top = driver_cuda(driver_branch, data) if driver_branch else ""
        fits = [v for v in kits["versions"] if version_tuple(v) >= version_tuple(first)
                and (not top or version_tuple(v) <= version_tuple(top))]
        if not fits:
            plan["errors"].append("no CUDA toolkit from %s on %s runs on driver branch %s (up to CUDA %s); set "
                                  "cuda_version or raise nvidia_driver_branch" % (source, os_name, driver_branch, top))
            return plan
        version = max(fits, key=version_tuple)
        plan["version"] = version
    if version not in kits["versions"]:
        plan["errors"].append("CUDA %s is not available from %s on %s (available: %s)" % (
            version, source, os_name, ", ".join(kits["versions"])))
        return plan
    first = kits.get("first_version", {}).get(os_name)
    if first and version_tuple(version) < version_tuple(first):
        plan["errors"].append("NVIDIA's CUDA repository for %s starts at CUDA %s; CUDA %s is not in it" % (
            os_name, first, version))
        return plan
    if component not in ("toolkit", "runtime"):
        plan["errors"].append("cuda_component must be toolkit or runtime (got %s)" % component)
        return plan
    if driver_branch:
        top = driver_cuda(driver_branch, data)
        if not top:
            plan["warnings"].append("driver branch %s is not in the compatibility data" % driver_branch)
        elif version_tuple(version) > version_tuple(top):
            need = min((b for b, v in data["driver_branches"].items()
                        if version_tuple(v["cuda"]) >= version_tuple(version)), key=version_tuple, default="")
            plan["errors"].append(
                "CUDA %s is newer than driver branch %s supports (up to CUDA %s); set cuda_version to %s or "
                "older, or nvidia_driver_branch to %s or newer" % (version, driver_branch, top, top, need or "?"))
    major, minor = version.split(".")[:2]
    mgr = "apt" if osinfo["family"] == "Debian" else "dnf"
    plan["packages"] = [_fmt(p, major=major, minor=minor, version=version) for p in kits[mgr][component]]
    root = _fmt(kits["root"], version=version)
    plan["root"] = root
    plan["bin_dir"] = root + "/bin"
    plan["lib_dir"] = "" if root == "/usr" else root + "/lib64"
    plan["repo"] = repository(source, osinfo, arch, data)
    return plan


# -- PyTorch ----------------------------------------------------------------------------------------
def torch_release(version):
    parts = version_tuple(version)
    return "%d.%d" % parts[:2] if len(parts) >= 2 else str(version)


def pytorch_plan(torch_version, index="auto", driver_branch="", architectures=None, gpu_present=False, data=None):
    """Which wheel index fits torch ``torch_version`` on a node with this driver and these GPUs."""
    data = data or load()
    table = data["pytorch_indices"]
    plan = {"errors": [], "warnings": [], "version": str(torch_version), "index": "", "index_url": "",
            "cuda": "", "requirement": "", "torchvision": "", "driver_branch": str(driver_branch or "")}
    release = torch_release(torch_version)
    rel = table["releases"].get(release)
    if rel is None:
        plan["errors"].append("torch %s is not in the compatibility data (known releases: %s)" % (
            torch_version, ", ".join(sorted(table["releases"], key=version_tuple))))
        return plan
    archs = [a for a in (architectures or []) if a != "unknown"]
    index = str(index or "auto")
    if index == "auto":
        if not gpu_present:
            index = "cpu"
        else:
            fits = []
            for cand in rel["indices"]:
                info = table["indices"][cand]
                if cand == "cpu":
                    continue
                if driver_branch and version_tuple(driver_branch) < version_tuple(info["min_driver"]):
                    continue
                if any(a not in info["architectures"] for a in archs):
                    continue
                fits.append(cand)
            if not fits:
                plan["errors"].append(
                    "no CUDA wheel of torch %s fits this node (driver %s, GPUs %s; torch %s publishes %s); "
                    "upgrade the driver or pick another torch version" % (
                        torch_version, driver_branch or "unknown", "/".join(archs) or "unknown", release,
                        ", ".join(rel["indices"])))
                return plan
            index = max(fits, key=lambda c: version_tuple(table["indices"][c]["cuda"]))
    if index not in table["indices"]:
        plan["errors"].append("unknown wheel index '%s' (known: %s)" % (index, ", ".join(table["indices"])))
        return plan
    if index not in rel["indices"]:
        plan["errors"].append("torch %s has no %s wheels (it publishes %s); set pytorch_cuda_index to one of them" % (
            torch_version, index, ", ".join(rel["indices"])))
        return plan
    info = table["indices"][index]
    if index != "cpu":
        if driver_branch and version_tuple(driver_branch) < version_tuple(info["min_driver"]):
            plan["errors"].append(
                "%s wheels (CUDA %s) need driver branch %s or newer; the node's driver is %s: set "
                "nvidia_driver_branch to %s or pick an older pytorch_cuda_index" % (
                    index, info["cuda"], info["min_driver"], driver_branch, info["min_driver"]))
        missing = [a for a in archs if a not in info["architectures"]]
        if missing:
            plan["errors"].append("%s wheels of torch %s carry no kernels for %s GPUs; pick an index that covers "
                                  "them (%s)" % (index, release, "/".join(missing), ", ".join(
                                      c for c in rel["indices"] if c != "cpu" and all(
                                          a in table["indices"][c]["architectures"] for a in archs)) or "none"))
        if not gpu_present:
            plan["warnings"].append("%s wheels on a node without an NVIDIA GPU: torch will run on the CPU" % index)
    elif gpu_present:
        plan["warnings"].append("CPU wheels on a node with NVIDIA GPUs: torch.cuda will not be available")
    plan["index"] = index
    plan["cuda"] = info["cuda"] or ""
    plan["index_url"] = _fmt(table["index_url"], index=index)
    plan["requirement"] = "torch==%s+%s" % (torch_version, index)
    plan["torchvision"] = "%s.%s" % (rel["torchvision"], version_tuple(torch_version)[2]) if len(
        version_tuple(torch_version)) > 2 else rel["torchvision"]
    return plan


def tensorflow_plan(tf_version, variant="auto", driver_branch="", architectures=None, gpu_present=False,
                    python_version="", data=None):
    """Which TensorFlow package fits ``tf_version`` on a node with this driver, these GPUs and this Python:
    C(tensorflow[and-cuda]) (CUDA and cuDNN as wheels; the node needs only the driver) or C(tensorflow-cpu)."""
    data = data or load()
    table = data["tensorflow_releases"]
    release = torch_release(tf_version)
    plan = {"errors": [], "warnings": [], "version": str(tf_version), "variant": "", "package": "", "cuda": "",
            "cudnn": "", "requirement": "", "driver_branch": str(driver_branch or ""),
            "keras2": "%s~=%s.0" % (table["keras2_package"], release)}
    rel = table["releases"].get(release)
    if rel is None:
        plan["errors"].append("TensorFlow %s is not in the compatibility data (known releases: %s)" % (
            tf_version, ", ".join(sorted(table["releases"], key=version_tuple))))
        return plan
    if python_version:
        low, high = rel["python"]
        if not version_tuple(low) <= version_tuple(python_version)[:2] <= version_tuple(high):
            plan["errors"].append("TensorFlow %s has wheels for Python %s to %s; the node's Python is %s: pick another "
                                  "tensorflow_version or tensorflow_python" % (tf_version, low, high, python_version))
    variant = str(variant or "auto")
    if variant == "auto":
        variant = "cuda" if gpu_present else "cpu"
    if variant not in ("cpu", "cuda"):
        plan["errors"].append("unknown tensorflow_variant '%s' (auto, cpu or cuda)" % variant)
        return plan
    archs = [a for a in (architectures or []) if a != "unknown"]
    if variant == "cuda":
        if driver_branch and version_tuple(driver_branch) < version_tuple(rel["min_driver"]):
            plan["errors"].append(
                "TensorFlow %s is built for CUDA %s, which needs driver branch %s or newer; the node's driver is %s: "
                "set nvidia_driver_branch to %s or newer" % (tf_version, rel["cuda"], rel["min_driver"], driver_branch,
                                                             rel["min_driver"]))
        newer = [a for a in archs if a not in table["architectures"]]
        if newer:
            note = "TensorFlow %s carries no kernels built for %s GPUs: they run its PTX through the driver's JIT " \
                   "compiler (a slow first start)" % (tf_version, "/".join(newer))
            if driver_branch and version_tuple(driver_branch) < version_tuple(rel["ptx_min_driver"]):
                plan["errors"].append("%s, which needs driver branch %s or newer; the node's is %s" % (
                    note, rel["ptx_min_driver"], driver_branch))
            else:
                plan["warnings"].append(note)
        if not gpu_present:
            plan["warnings"].append("CUDA TensorFlow on a node without an NVIDIA GPU: it will run on the CPU")
        plan.update(cuda=rel["cuda"], cudnn=rel["cudnn"], package=table["gpu_package"],
                    requirement="%s[%s]==%s" % (table["gpu_package"], table["gpu_extra"], tf_version))
    else:
        if gpu_present:
            plan["warnings"].append("tensorflow-cpu on a node with NVIDIA GPUs: TensorFlow will not use them")
        plan.update(package=table["cpu_package"], requirement="%s==%s" % (table["cpu_package"], tf_version))
    plan["variant"] = variant
    return plan
