# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""slurm.conf's node lines from the inventory and the nodes' facts (controller side only)."""

from __future__ import annotations

import re

# what Slurm keeps for the OS and its daemons out of each node's memory (RealMemory = total - reserve)
DEFAULT_MEMORY_RESERVE_MB = 1024


class SlurmConfError(ValueError):
    """A node whose facts cannot be turned into a slurm.conf line."""


def gres_type(model):
    """A GPU model as a Gres type: lower case, the first word after the vendor (``NVIDIA H100 80GB HBM3`` -> h100,
    ``Tesla V100-SXM2-16GB`` -> v100); ``gpu`` when nothing is left."""
    words = [w for w in re.split(r"[\s_-]+", str(model or "").lower()) if w and w not in ("nvidia", "tesla", "geforce")]
    cleaned = re.sub(r"[^a-z0-9.]", "", words[0]) if words else ""
    return cleaned or "gpu"


def node_name_ok(name):
    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", str(name or "")))


def node_record(host, address, cpus, memory_mb, gpu_count=0, gpu_models=None, hostname=None,
                memory_reserve_mb=DEFAULT_MEMORY_RESERVE_MB):
    """One node of slurm.conf: its name (the inventory hostname), address, CPUs, RealMemory and Gres."""
    if not node_name_ok(host):
        raise SlurmConfError("%r cannot be a Slurm node name (letters, digits, '.', '_' and '-' only)" % (host,))
    if not address:
        raise SlurmConfError("%s has no address (gpu_cluster_private_address or ansible_host)" % host)
    try:
        cpus = int(cpus)
        memory_mb = int(memory_mb)
        gpu_count = int(gpu_count or 0)
    except (TypeError, ValueError):
        raise SlurmConfError("%s: CPUs, memory and GPU count must be numbers (facts gathered?), got %r, %r, %r"
                             % (host, cpus, memory_mb, gpu_count))
    if cpus < 1 or memory_mb < 1:
        raise SlurmConfError("%s: %d CPUs and %d MB of memory: facts missing?" % (host, cpus, memory_mb))
    real = max(memory_mb - int(memory_reserve_mb), memory_mb // 2)
    models = sorted(set(gres_type(m) for m in (gpu_models or []))) if gpu_count else []
    gres = ""
    if gpu_count:
        # one model per node is the normal case; mixed boards are counted under the first model's name
        gres = "gpu:%s:%d" % (models[0] if models else "gpu", gpu_count)
    rec = {"name": str(host), "address": str(address), "hostname": str(hostname or host), "cpus": cpus,
           "real_memory": real, "gpus": gpu_count, "gres": gres}
    rec["line"] = node_line(rec)
    return rec


def node_line(rec):
    parts = ["NodeName=%s" % rec["name"]]
    if rec.get("hostname") and rec["hostname"] != rec["name"]:
        parts.append("NodeHostname=%s" % rec["hostname"])
    parts += ["NodeAddr=%s" % rec["address"], "CPUs=%d" % rec["cpus"], "RealMemory=%d" % rec["real_memory"]]
    if rec.get("gres"):
        parts.append("Gres=%s" % rec["gres"])
    parts.append("State=UNKNOWN")
    return " ".join(parts)


def _rank(hostvars):
    try:
        return int(hostvars.get("gpu_cluster_rank"))
    except (TypeError, ValueError):
        return 1 << 30


def nodes_from_hostvars(hosts, memory_reserve_mb=DEFAULT_MEMORY_RESERVE_MB):
    """Node records, in rank order (then name), from the nodes' hostvars: inventory_hostname,
    gpu_cluster_private_address (else ansible_host), gpu_cluster_rank, ansible_facts (processor_vcpus, memtotal_mb,
    hostname) and preflight_gpu (count, models)."""
    if not isinstance(hosts, (list, tuple)):
        raise SlurmConfError("expected the nodes' hostvars as a list, got %s" % type(hosts).__name__)
    ordered = sorted(hosts, key=lambda h: (_rank(h), str(h.get("inventory_hostname"))))
    records = []
    for hv in ordered:
        facts = hv.get("ansible_facts") or {}
        gpu = hv.get("preflight_gpu") or {}
        address = hv.get("gpu_cluster_private_address") or hv.get("ansible_host") or hv.get("inventory_hostname")
        records.append(node_record(
            hv.get("inventory_hostname"), address,
            facts.get("processor_vcpus") or facts.get("processor_count"), facts.get("memtotal_mb"),
            gpu.get("count", 0) if gpu.get("present", bool(gpu.get("count"))) else 0, gpu.get("models"),
            hostname=facts.get("hostname"), memory_reserve_mb=memory_reserve_mb))
    names = [r["name"] for r in records]
    if len(set(names)) != len(names):
        raise SlurmConfError("duplicate node names: %s" % ", ".join(sorted(set(n for n in names if names.count(n) > 1))))
    return records


def cluster_name(name):
    """Slurm's ClusterName (also MariaDB table names): lower case letters, digits and '_'."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", str(name or "").lower()).strip("_")
    if not cleaned:
        raise SlurmConfError("empty cluster name")
    return cleaned[:40]
