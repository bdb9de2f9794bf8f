"""The torchrun role's host firewall (issue 17): the rendezvous and NCCL/Gloo ports answer only the cluster's
private addresses; the monitoring role's firewall tasks are shared, not copied."""

from __future__ import annotations

import yaml

from conftest import ROOT
from test_role_rendering import render_template

LAYOUT = [{"host": "n0", "address": "10.0.0.2"}, {"host": "n1", "address": "10.0.0.3"},
          {"host": "n2", "address": "fd00::4"}]


def test_the_job_ports_answer_only_the_cluster():
    rules = render_template("torchrun", "torchrun-firewall.nft.j2", {
        "_torchrun_layout": LAYOUT, "torchrun_rdzv_port": 29400, "torchrun_comm_ports": "32768-60999",
        "ansible_managed": "managed"})
    lines = [line.strip() for line in rules.splitlines()]
    assert "ct state established,related accept" in lines
    assert "tcp dport { 29400, 32768-60999 } ip saddr { 10.0.0.2, 10.0.0.3 } accept" in lines
    assert "tcp dport { 29400, 32768-60999 } ip6 saddr { fd00::4 } accept" in lines
    # the drop comes after the accepts, and nothing else of the node is touched (policy accept)
    assert lines.index("tcp dport { 29400, 32768-60999 } drop") > lines.index(
        "tcp dport { 29400, 32768-60999 } ip saddr { 10.0.0.2, 10.0.0.3 } accept")
    assert "type filter hook input priority filter; policy accept;" in lines


def test_the_torchrun_role_reuses_the_monitoring_firewall_tasks():
    with open("%s/roles/torchrun/tasks/node.yml" % ROOT) as handle:
        node = yaml.safe_load(handle)
    fw = [t for t in node if "ansible.builtin.include_role" in t][0]
    assert fw["ansible.builtin.include_role"] == {"name": "aiinfra.gpu_cluster.monitoring",
                                                  "tasks_from": "firewall.yml"}
    assert fw["vars"]["monitoring_host_firewall"]["table"] == "aiinfra_torchrun"
    # the rules' path and the unit are named once, in vars/main.yml (the readiness round checks the same ones)
    with open("%s/roles/torchrun/vars/main.yml" % ROOT) as handle:
        role_vars = yaml.safe_load(handle)
    firewall = dict(fw["vars"]["monitoring_host_firewall"])
    assert firewall["rules"] == "{{ _torchrun_firewall_rules }}"
    assert firewall["service"] == "{{ _torchrun_firewall_service }}"
    assert role_vars["_torchrun_prepared"]["units"] == "{{ [_torchrun_firewall_service] if torchrun_firewall | bool else [] }}"
    firewall.update(rules=role_vars["_torchrun_firewall_rules"], service=role_vars["_torchrun_firewall_service"])
    unit = render_template("monitoring", "host-firewall.service.j2", {
        "ansible_managed": "m", "monitoring_host_firewall": firewall,
        "_torchrun_firewall_template": "/x/torchrun-firewall.nft.j2"})
    assert "ExecStart=/usr/sbin/nft -f /etc/aiinfra/torchrun-firewall.nft" in unit
    assert "ExecStop=/usr/sbin/nft delete table inet aiinfra_torchrun" in unit


def test_a_tensorflow_job_adds_its_workers_port_for_the_cluster_only():
    rules = render_template("torchrun", "torchrun-firewall.nft.j2", {
        "_torchrun_layout": LAYOUT, "torchrun_rdzv_port": 29400, "torchrun_comm_ports": "32768-60999",
        "ansible_managed": "managed",
        "_torchrun_plan": {"settings": {"framework": "tensorflow", "tf_worker_port": 29410}}})
    lines = [line.strip() for line in rules.splitlines()]
    assert "tcp dport { 29400, 32768-60999, 29410 } ip saddr { 10.0.0.2, 10.0.0.3 } accept" in lines
    assert "tcp dport { 29400, 32768-60999, 29410 } ip6 saddr { fd00::4 } accept" in lines
    assert "tcp dport { 29400, 32768-60999, 29410 } drop" in lines
    # a PyTorch job's plan: the rules stay as they were
    rules = render_template("torchrun", "torchrun-firewall.nft.j2", {
        "_torchrun_layout": LAYOUT, "torchrun_rdzv_port": 29400, "torchrun_comm_ports": "32768-60999",
        "ansible_managed": "managed", "_torchrun_plan": {"settings": {"framework": "pytorch"}}})
    assert "tcp dport { 29400, 32768-60999 } drop" in [line.strip() for line in rules.splitlines()]
