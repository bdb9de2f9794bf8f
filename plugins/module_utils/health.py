# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate on a node (module aiinfra.gpu_cluster.node_health): parsers for what the node's tools print
(nvidia-smi, the kernel log, dcgmi diag) and the checks built on them. Pure functions but :func:`pci_gpus`, which
reads sysfs; the module runs the commands.

Each check is a dict ``{"name", "status", "detail"}`` with status ``passed``, ``failed``, ``warning`` or
``not applicable`` (a CPU node's GPU checks: not passed, not failed)."""

from __future__ import annotations

import os
import re

PASSED, FAILED, WARNING, NA = "passed", "failed", "warning", "not applicable"

# NVIDIA's Xid catalogue (https://docs.nvidia.com/deploy/xid-errors/index.html): these are usually the application's
# own doing (an illegal address, an MMU fault of its kernels, a stopped or preempted channel) - reported as a warning;
# every other Xid (48 DBE ECC, 63/64 row remapping, 74 NVLink, 79 fallen off the bus, 92/94/95 ECC, 119/120 GSP, ...)
# fails the node.
APPLICATION_XIDS = frozenset([13, 31, 43, 45, 68])

XID_RE = re.compile(r"NVRM: Xid \((?P<pci>[^)]*)\): (?P<code>\d+)(?:, (?P<rest>.*))?")
# uncorrectable memory errors as the driver and the kernel's EDAC/AER report them
ECC_RE = re.compile(r"(uncorrectable|double[- ]bit|DBE).{0,40}(ECC|error)|(ECC|error).{0,40}uncorrect", re.IGNORECASE)


def parse_kernel_log(text):
    """The Xid events and the uncorrectable ECC lines of a kernel log (``journalctl -k -b`` or ``dmesg``).

    Returns ``{"xid": [{"pci", "code", "detail", "application", "line"}], "ecc": [line, ...]}``."""
    xids, ecc = [], []
    for line in (text or "").splitlines():
        match = XID_RE.search(line)
        if match:
            code = int(match.group("code"))
            xids.append({"pci": match.group("pci").replace("PCI:", "").strip(), "code": code,
                         "detail": (match.group("rest") or "").strip(), "application": code in APPLICATION_XIDS,
                         "line": line.strip()})
            continue
        if ("NVRM" in line or "EDAC" in line or "nvidia" in line.lower()) and ECC_RE.search(line):
            ecc.append(line.strip())
    return {"xid": xids, "ecc": ecc}


def kernel_log_check(text, source):
    """The check ``kernel log`` from a parsed kernel log: a hardware Xid or an uncorrectable ECC line fails."""
    found = parse_kernel_log(text)
    hard = [x for x in found["xid"] if not x["application"]]
    soft = [x for x in found["xid"] if x["application"]]
    figures = {"xid": sorted(set(x["code"] for x in found["xid"])), "ecc_lines": len(found["ecc"]), "source": source}
    if hard or found["ecc"]:
        what = ["Xid %d on %s" % (x["code"], x["pci"]) for x in hard[:5]] + found["ecc"][:3]
        return check("kernel log", FAILED, "since boot (%s): %s" % (source, "; ".join(what)), figures)
    if soft:
        return check("kernel log", WARNING, "application Xid(s) since boot (%s): %s" % (
            source, ", ".join(sorted(set(str(x["code"]) for x in soft)))), figures)
    return check("kernel log", PASSED, "no Xid, no uncorrectable ECC error since boot (%s)" % source, figures)


def check(name, status, detail, figures=None):
    out = {"name": name, "status": status, "detail": detail}
    if figures:
        out["figures"] = figures
    return out


def _number(value):
    value = (value or "").strip()
    try:
        return int(value)
    except ValueError:
        return None


SMI_FIELDS = ("index", "name", "pci.bus_id", "ecc.errors.uncorrected.volatile.total")


def parse_nvidia_smi(text):
    """``nvidia-smi --query-gpu=index,name,pci.bus_id,ecc.errors.uncorrected.volatile.total --format=csv,noheader``
    as a list of ``{"index", "name", "pci", "ecc_uncorrected"}`` (``None`` where the GPU has no ECC: ``[N/A]``)."""
    gpus = []
    for line in (text or "").splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        gpus.append({"index": int(cells[0]), "name": cells[1], "pci": cells[2], "ecc_uncorrected": _number(cells[3])})
    return gpus


def pci_gpus(sysfs="/sys/bus/pci/devices"):
    """The NVIDIA GPUs on the PCI bus (vendor 0x10de, class 0x0300xx or 0x0302xx): their slots, sorted."""
    slots = []
    try:
        names = os.listdir(sysfs)
    except OSError:
        return slots
    for name in names:
        try:
            with open(os.path.join(sysfs, name, "vendor")) as handle:
                vendor = handle.read().strip().lower()
            with open(os.path.join(sysfs, name, "class")) as handle:
                klass = handle.read().strip().lower()
        except OSError:
            continue
        if vendor == "0x10de" and (klass.startswith("0x0300") or klass.startswith("0x0302")):
            slots.append(name)
    return sorted(slots)


def gpu_checks(smi_rc, smi_out, smi_err, pci_count, expected_count=None, expected_model=""):
    """The checks ``driver``, ``gpu count``, ``gpu model`` and ``ecc`` from nvidia-smi's answer.

    ``smi_rc``: its exit code (None: nvidia-smi is not installed); ``pci_count``: the GPUs on the PCI bus;
    ``expected_count``: the instance type's GPU count (None: the PCI bus's); ``expected_model``: a substring of the
    GPU name (e.g. ``H100``; empty: any)."""
    names = ("driver", "gpu count", "gpu model", "ecc")
    if not pci_count and not expected_count:
        return [check(n, NA, "no NVIDIA GPU on this node (a CPU node)") for n in names]
    if smi_rc is None:
        return [check("driver", FAILED, "%d NVIDIA GPU(s) on the PCI bus but no nvidia-smi" % pci_count)] + [
            check(n, NA, "the driver does not answer") for n in names[1:]]
    if smi_rc != 0:
        return [check("driver", FAILED, "nvidia-smi failed (rc %s): %s" % (
            smi_rc, (smi_err or smi_out or "").strip()[-300:]))] + [
                check(n, NA, "the driver does not answer") for n in names[1:]]
    gpus = parse_nvidia_smi(smi_out)
    out = [check("driver", PASSED, "nvidia-smi answers (%d GPU(s))" % len(gpus))]
    want = expected_count if expected_count else pci_count
    source = "the instance type" if expected_count else "the PCI bus"
    figures = {"gpus": len(gpus), "expected": want}
    if len(gpus) != want:
        out.append(check("gpu count", FAILED, "nvidia-smi sees %d GPU(s), %s has %d" % (len(gpus), source, want),
                         figures))
    else:
        out.append(check("gpu count", PASSED, "%d GPU(s), as %s says" % (len(gpus), source), figures))
    models = sorted(set(g["name"] for g in gpus))
    if expected_model and [m for m in models if expected_model.lower() not in m.lower()]:
        out.append(check("gpu model", FAILED, "expected %s, found %s" % (expected_model, ", ".join(models)),
                         {"models": models}))
    else:
        out.append(check("gpu model", PASSED, ", ".join(models) or "no GPU", {"models": models}))
    bad = [g for g in gpus if g["ecc_uncorrected"]]
    if bad:
        out.append(check("ecc", FAILED, "uncorrectable ECC errors: %s" % ", ".join(
            "GPU %d (%s): %d" % (g["index"], g["pci"], g["ecc_uncorrected"]) for g in bad),
            {"ecc_uncorrected": dict((str(g["index"]), g["ecc_uncorrected"]) for g in bad)}))
    elif all(g["ecc_uncorrected"] is None for g in gpus):
        out.append(check("ecc", NA, "the GPUs do not report ECC counters"))
    else:
        out.append(check("ecc", PASSED, "no uncorrectable ECC error (volatile counters)"))
    return out


DIAG_ROW_RE = re.compile(r"^\|\s*(?P<name>[^|]+?)\s*\|\s*(?P<result>Pass|Fail|Warn|Skip)\w*\b(?P<rest>[^|]*)\|?",
                         re.IGNORECASE)


def parse_dcgmi_diag(text):
    """The rows of ``dcgmi diag -r 1``'s table: ``[{"test", "result"}]`` (result Pass, Fail, Warn or Skip)."""
    rows = []
    for line in (text or "").splitlines():
        match = DIAG_ROW_RE.match(line.strip())
        if match:
            rows.append({"test": match.group("name").strip(), "result": match.group("result").capitalize()})
    return rows


def dcgm_check(installed, rc, out, err):
    """The check ``dcgm diag`` (level 1): not applicable without dcgmi, failed on a Fail row or a non-zero exit."""
    if not installed:
        return check("dcgm diag", NA, "DCGM (dcgmi) is not installed")
    rows = parse_dcgmi_diag(out)
    failed = [r["test"] for r in rows if r["result"] == "Fail"]
    figures = {"tests": len(rows), "failed": failed}
    if failed or rc != 0:
        return check("dcgm diag", FAILED, "dcgmi diag -r 1 (rc %s): %s" % (
            rc, ", ".join(failed) or (err or out or "").strip()[-300:]), figures)
    return check("dcgm diag", PASSED, "dcgmi diag -r 1: %d test(s) passed or skipped" % len(rows), figures)


def local_allreduce_check(result, threshold=None):
    """The check ``nvlink all-reduce`` from the bench's ``local`` result (``busbw_gbs``); ``threshold``: the
    instance type's minimum bus bandwidth in GB/s (None: only reported; the controller compares the nodes)."""
    if result is None:
        return check("nvlink all-reduce", NA, "no GPU")
    if result.get("error"):
        return check("nvlink all-reduce", FAILED, result["error"])
    busbw = result.get("busbw_gbs")
    if busbw is None:
        return check("nvlink all-reduce", NA, result.get("note") or "not measured")
    figures = {"busbw_gbs": busbw, "gpus": result.get("gpus"), "bytes": result.get("bytes")}
    if threshold and busbw < threshold:
        return check("nvlink all-reduce", FAILED, "bus bandwidth %.1f GB/s over %s GPUs, under %.1f GB/s" % (
            busbw, result.get("gpus"), threshold), figures)
    return check("nvlink all-reduce", PASSED, "bus bandwidth %.1f GB/s over %s GPUs" % (busbw, result.get("gpus")),
                 figures)


def overall(checks):
    """failed when any check failed, else passed."""
    return FAILED if any(c["status"] == FAILED for c in checks) else PASSED
