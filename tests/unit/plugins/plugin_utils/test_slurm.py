"""slurm.conf's node lines from the nodes' hostvars (plugin_utils/slurm.py, filter slurm_nodes), and the role's
slurm.conf template rendered from them: Gres lines only on GPU nodes, the partition of every node, the cgroup
plugins only when confinement is on."""

from __future__ import annotations

import os
import re

import jinja2
import pytest

from ansible.errors import AnsibleFilterError

from conftest import ROOT

from ansible_collections.aiinfra.gpu_cluster.plugins.filter.slurm import slurm_cluster_name, slurm_nodes
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import gpu_compat, slurm

H100 = gpu_compat.gpu_facts(["0000:18:00.0 0x10de 0x2330 0x030200"] * 8)
NO_GPU = gpu_compat.gpu_facts([])


def hostvars(name, rank, address, cpus=2, mem=4096, gpu=None, hostname=None, **extra):
    hv = {"inventory_hostname": name, "gpu_cluster_rank": rank, "gpu_cluster_private_address": address,
          "ansible_host": "203.0.113.%d" % (rank + 1), "preflight_gpu": gpu if gpu is not None else NO_GPU,
          "ansible_facts": {"processor_vcpus": cpus, "memtotal_mb": mem, "hostname": hostname or name,
                            "os_family": "Debian"}}
    hv.update(extra)
    return hv


def test_gres_type_from_the_model_names():
    assert slurm.gres_type("H100-SXM5-80GB") == "h100"
    assert slurm.gres_type("NVIDIA H100 80GB HBM3") == "h100"
    assert slurm.gres_type("Tesla V100-SXM2-16GB") == "v100"
    assert slurm.gres_type("NVIDIA A10G") == "a10g"
    assert slurm.gres_type("") == "gpu"
    assert slurm.gres_type(None) == "gpu"


def test_node_lines_in_rank_order_gres_only_on_gpu_nodes():
    hosts = [hostvars("c-2", 2, "10.0.0.12"),
             hostvars("c-0", 0, "10.0.0.10", cpus=96, mem=1024 * 1024, gpu=H100, hostname="ip-10-0-0-10"),
             hostvars("c-1", 1, "10.0.0.11", cpus=8, mem=32768)]
    recs = slurm_nodes(hosts)
    assert [r["name"] for r in recs] == ["c-0", "c-1", "c-2"]
    assert recs[0]["line"] == ("NodeName=c-0 NodeHostname=ip-10-0-0-10 NodeAddr=10.0.0.10 CPUs=96 "
                               "RealMemory=1047552 Gres=gpu:h100:8 State=UNKNOWN")
    assert recs[1]["line"] == "NodeName=c-1 NodeAddr=10.0.0.11 CPUs=8 RealMemory=31744 State=UNKNOWN"
    assert recs[2]["gres"] == "" and recs[2]["gpus"] == 0 and "Gres=" not in recs[2]["line"]
    # a small node keeps at least half of its memory; the reserve is a parameter
    assert recs[2]["real_memory"] == 3072
    assert slurm_nodes([hostvars("s", 0, "10.0.0.1", mem=1500)])[0]["real_memory"] == 750
    assert slurm_nodes([hostvars("s", 0, "10.0.0.1", mem=8192)], 2048)[0]["real_memory"] == 6144


def test_the_address_falls_back_to_ansible_host():
    hv = hostvars("b-0", 0, None)
    assert slurm_nodes([hv])[0]["address"] == "203.0.113.1"


@pytest.mark.parametrize("hv, message", [
    (hostvars("c-0", 0, "10.0.0.10", cpus=None), "c-0: CPUs, memory and GPU count must be numbers"),
    (hostvars("c-0", 0, "10.0.0.10", mem=0), "c-0: 2 CPUs and 0 MB of memory"),
    (hostvars("bad name", 0, "10.0.0.10"), "'bad name' cannot be a Slurm node name"),
])
def test_bad_facts_fail_naming_the_node(hv, message):
    with pytest.raises(AnsibleFilterError, match=message):
        slurm_nodes([hv])


def test_duplicate_names_and_wrong_input_fail():
    with pytest.raises(AnsibleFilterError, match="duplicate node names: c-0"):
        slurm_nodes([hostvars("c-0", 0, "10.0.0.10"), hostvars("c-0", 1, "10.0.0.11")])
    with pytest.raises(AnsibleFilterError, match="as a list"):
        slurm_nodes({"c-0": {}})


def test_cluster_name():
    assert slurm_cluster_name("Slurm-a1B2c3") == "slurm_a1b2c3"
    assert slurm_cluster_name("demo") == "demo"
    assert len(slurm_cluster_name("x" * 80)) == 40
    with pytest.raises(AnsibleFilterError, match="empty cluster name"):
        slurm_cluster_name("--")


def render(template, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, "roles", "slurm", "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    base = {"ansible_managed": "managed", "slurm_partition": "main", "slurm_partition_max_time": "INFINITE",
            "slurm_ctld_port": 6817, "slurm_slurmd_port": 6818, "slurm_dbd_port": 6819,
            "slurm_srun_port_range": "60001-63000", "slurm_state_dir": "/var/lib/slurm/slurmctld",
            "slurm_spool_dir": "/var/lib/slurm/slurmd", "slurm_log_dir": "/var/log/slurm",
            "slurm_conf_dir": "/etc/slurm", "slurm_cgroup": "auto", "slurm_cluster": "c"}
    base.update(variables)
    return env.get_template(template).render(**base)


def test_slurm_conf_from_the_nodes():
    nodes = slurm_nodes([hostvars("c-0", 0, "10.0.0.10", gpu=H100, hostname="ip-10-0-0-10"),
                         hostvars("c-1", 1, "10.0.0.11")])
    text = render("slurm.conf.j2", slurm_nodes_conf=nodes, slurm_controller="c-0", slurm_cgroup_enabled=True)
    lines = text.splitlines()
    assert "SlurmctldHost=ip-10-0-0-10(10.0.0.10)" in lines
    assert "AccountingStorageType=accounting_storage/slurmdbd" in lines
    assert "AccountingStorageHost=10.0.0.10" in lines
    assert "GresTypes=gpu" in lines
    assert "ProctrackType=proctrack/cgroup" in lines and "TaskPlugin=task/cgroup,task/affinity" in lines
    assert "include /etc/slurm/aiinfra-nodes.conf" in lines
    assert lines[-1] == "PartitionName=main Nodes=c-0,c-1 Default=YES MaxTime=INFINITE State=UP"
    # CPU-only cluster, confinement off: no GresTypes, linuxproc
    cpu = slurm_nodes([hostvars("c-0", 0, "10.0.0.10"), hostvars("c-1", 1, "10.0.0.11")])
    text = render("slurm.conf.j2", slurm_nodes_conf=cpu, slurm_controller="c-1", slurm_cgroup_enabled=False)
    assert "GresTypes" not in text and "Gres=" not in text
    assert "ProctrackType=proctrack/linuxproc" in text and "task/cgroup" not in text
    assert "SlurmctldHost=c-1(10.0.0.11)" in text


def test_firewall_keeps_the_ports_to_the_nodes():
    nodes = slurm_nodes([hostvars("c-0", 0, "10.0.0.10"), hostvars("c-1", 1, "fd00::11")])
    text = render("slurm-firewall.nft.j2", slurm_nodes_conf=nodes)
    assert "tcp dport { 6817, 6818, 6819, 60001-63000 } ip saddr { 10.0.0.10 } accept" in text
    assert "tcp dport { 6817, 6818, 6819, 60001-63000 } ip6 saddr { fd00::11 } accept" in text
    assert text.rstrip().splitlines()[-3].strip() == "tcp dport { 6817, 6818, 6819, 60001-63000 } drop"
