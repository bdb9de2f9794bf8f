"""The monitoring role's alert rules (promtool check rules / test rules, from make setup) and the paths the
local nodes cannot take: the DCGM exporter on GPU nodes, the RHEL units, the exporter firewall, the scrape
targets of a cluster with GPU nodes - rendered from the real role files with Ansible's templar."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN
from test_role_rendering import H100_HGX, NO_GPU, render, render_template, role_vars, tasks

RULES = os.path.join(ROOT, "roles", "monitoring", "files", "gpu_cluster.rules.yml")
RULE_TESTS = os.path.join(ROOT, "tests", "unit", "roles", "monitoring", "gpu_cluster.rules.test.yml")
PROMTOOL = os.path.join(VENV_BIN, "promtool")


def promtool(*args, cwd=None):
    assert os.path.exists(PROMTOOL), "promtool is missing: make setup takes it from Debian's prometheus package"
    return subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, cwd=cwd, check=False)


def test_rules_pass_promtool_check():
    proc = promtool("check", "rules", RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


def test_rules_pass_their_promtool_unit_tests():
    proc = promtool("test", "rules", RULE_TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_unit_tests_catch_a_broken_rule(tmp_path):
    """The unit tests can fail: the idle threshold raised, or the run condition dropped, each breaks them."""
    with open(RULES) as handle:
        text = handle.read()
    for broken in (text.replace("(DCGM_FI_DEV_GPU_UTIL) < 10", "(DCGM_FI_DEV_GPU_UTIL) < 1"),
                   text.replace('state="failed"}) == 1', 'state="failed"}) >= 0'),
                   text.replace("for: 2m", "for: 10m")):
        assert broken != text
        layout = tmp_path / "roles" / "monitoring" / "files"
        layout.mkdir(parents=True, exist_ok=True)
        (layout / "gpu_cluster.rules.yml").write_text(broken)
        test_dir = tmp_path / "tests" / "unit" / "roles" / "monitoring"
        test_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(RULE_TESTS, test_dir)
        proc = promtool("test", "rules", str(test_dir / os.path.basename(RULE_TESTS)))
        assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


def cluster_vars(os_name, gpu, host="c-0", **extra):
    """The role's variables on ``host`` of a 3-node cluster (c-0 .. c-2, rank = index, c-1 has GPUs)."""
    nodes = {"c-0": ("10.0.0.10", NO_GPU), "c-1": ("10.0.0.11", H100_HGX), "c-2": ("10.0.0.12", NO_GPU)}
    v = role_vars("monitoring", os_name, preflight_gpu=gpu, inventory_hostname=host,
                  gpu_cluster_private_address=nodes[host][0], gpu_cluster_name="c", gpu_cluster_cloud="aws",
                  groups={"gpu_nodes": ["c-2", "c-1", "c-0"]}, **extra)
    hostvars = {}
    for name, (address, node_gpu) in nodes.items():
        hv = {"gpu_cluster_rank": int(name[-1]), "gpu_cluster_private_address": address, "gpu_cluster_name": "c"}
        node_v = dict(v, **hv, preflight_gpu=node_gpu, inventory_hostname=name)
        hv["monitoring_node"] = {"address": render(node_v["monitoring_listen_address"], node_v),
                                 "dcgm": render("{{ monitoring_dcgm_enabled | bool }}", node_v)}
        hostvars[name] = hv
    v["hostvars"] = hostvars
    return v


def test_prometheus_goes_to_rank_0_unless_named():
    v = cluster_vars("debian-12", NO_GPU)
    assert render(v["monitoring_server"], v).strip() == "c-0"  # rank 0, though listed last
    v["monitoring_prometheus_host"] = "c-2"
    assert render(v["monitoring_server"], v).strip() == "c-2"


def test_targets_from_the_inventory_dcgm_only_on_gpu_nodes():
    v = cluster_vars("debian-12", NO_GPU)
    with open(os.path.join(ROOT, "roles", "monitoring", "templates", "targets.yml.j2")) as handle:
        targets = yaml.safe_load(render(handle.read(), v))
    assert [(t["targets"], t["labels"]) for t in targets["node"]] == [
        (["10.0.0.12:9100"], {"node": "c-2", "rank": "2", "cluster": "c"}),
        (["10.0.0.11:9100"], {"node": "c-1", "rank": "1", "cluster": "c"}),
        (["10.0.0.10:9100"], {"node": "c-0", "rank": "0", "cluster": "c"})]
    assert [(t["targets"], t["labels"]["node"]) for t in targets["dcgm"]] == [(["10.0.0.11:9400"], "c-1")]


@pytest.mark.parametrize("os_name", ["ubuntu-22.04", "rhel-9"])
def test_dcgm_exporter_on_a_gpu_node_listens_on_the_private_address(os_name):
    v = cluster_vars(os_name, H100_HGX, host="c-1")
    assert render("{{ monitoring_dcgm_enabled | bool }}", v) is True
    unit = render_template("monitoring", "dcgm-exporter.service.j2", v)
    assert "\nExecStart=/usr/bin/dcgm-exporter --address 10.0.0.11:9400 --collectors " \
           "/etc/aiinfra/dcgm-exporter/counters.csv\n" in unit
    counters = render_template("monitoring", "dcgm-counters.csv.j2", v)
    fields = [ln.split(",")[0] for ln in counters.splitlines() if ln and not ln.startswith("#")]
    # every DCGM field the alert rules read is exported
    with open(RULES) as handle:
        rules = handle.read()
    for field in ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                  "DCGM_FI_DEV_GPU_UTIL"):
        assert field in rules and field in fields
    dcgm = tasks("monitoring", "dcgm_exporter.yml")
    assert render(dcgm["Install the DCGM exporter (from NVIDIA's CUDA repository)"]["ansible.builtin.package"]["name"],
                  v) == ["datacenter-gpu-manager-exporter"]
    main = tasks("monitoring", "main.yml")
    assert render("{{ %s }}" % main["DCGM exporter (GPU nodes)"]["when"], v) is True
    # and not on a node without a GPU, unless asked
    cpu = cluster_vars(os_name, NO_GPU, host="c-0")
    assert render("{{ %s }}" % main["DCGM exporter (GPU nodes)"]["when"], cpu) is False
    assert render("{{ monitoring_dcgm_enabled | bool }}", dict(cpu, monitoring_dcgm_exporter="always")) is True


@pytest.mark.parametrize("os_name, binary", [("debian-12", "/usr/bin/prometheus-node-exporter"),
                                             ("rhel-9", "/usr/bin/node_exporter")])
def test_units_listen_on_the_private_address_only(os_name, binary):
    v = cluster_vars(os_name, NO_GPU)
    exporter = render_template("monitoring", "node_exporter.conf.j2", v)
    assert "\nExecStart=\nExecStart=%s --web.listen-address=10.0.0.10:9100 --collector.systemd " \
           "--collector.systemd.unit-include=(aiinfra-torchrun-.+|aiinfra-dcgm-exporter|prometheus)[.]service\n" \
           % binary in exporter
    server = render_template("monitoring", "prometheus.conf.j2", v)
    assert "--web.listen-address=10.0.0.10:9090" in server and "--storage.tsdb.retention.time=15d" in server
    config = yaml.safe_load(render_template("monitoring", "prometheus.yml.j2", v))
    assert [job["job_name"] for job in config["scrape_configs"]] == ["prometheus", "node", "dcgm"]
    assert config["scrape_configs"][1]["file_sd_configs"] == [{"files": ["/etc/prometheus/file_sd/node.yml"]}]
    # IPv6 private addresses are bracketed
    v6 = dict(v, gpu_cluster_private_address="fd00::a")
    assert "--web.listen-address=[fd00::a]:9100" in render_template("monitoring", "node_exporter.conf.j2", v6)


def test_exporter_firewall_only_from_the_prometheus_node(tmp_path):
    gpu = cluster_vars("ubuntu-22.04", H100_HGX, host="c-1")
    assert render("{{ monitoring_firewall_enabled | bool }}", gpu) is True  # aws: on by default
    assert render("{{ monitoring_firewall_enabled | bool }}", dict(gpu, gpu_cluster_cloud="local")) is False
    rules = render_template("monitoring", "monitoring-firewall.nft.j2", gpu)
    assert "tcp dport { 9100, 9400 } ip saddr 10.0.0.10 accept\n    tcp dport { 9100, 9400 } drop\n" in rules
    assert "9090" not in rules  # Prometheus is not on this node
    server = render_template("monitoring", "monitoring-firewall.nft.j2", cluster_vars("debian-12", NO_GPU))
    assert "tcp dport { 9100 } ip saddr 10.0.0.10 accept" in server and "tcp dport 9090 drop" in server
    path = tmp_path / "fw.nft"
    path.write_text(server)
    if shutil.which("nft"):  # the syntax, as the role's validate step checks it on the node
        proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 or "Operation not permitted" in proc.stderr, proc.stderr


def test_utilisation_query_without_a_monitoring_node_reports_it_instead_of_failing(tmp_path):
    """The torchrun role includes query.yml after every run; used on its own (no node in the monitoring group, e.g. a
    Molecule scenario), the query must not fail on an empty delegate_to but say why there are no figures."""
    from conftest import ansible_env
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "connection": "local", "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"ansible.builtin.include_role": {"name": "aiinfra.gpu_cluster.monitoring", "tasks_from": "query.yml"},
                   "vars": {"monitoring_query_start": 1000, "monitoring_query_end": 1060}},
                  {"ansible.builtin.copy": {"content": "{{ monitoring_utilisation | to_json }}",
                                            "dest": str(tmp_path / "out.json")}}]}]))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", str(play)], cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    import json
    answers = json.loads((tmp_path / "out.json").read_text())
    assert set(answers) == {"all"}, answers  # one query for every panel
    from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.utilisation import split
    for answer in split(answers).values():
        assert answer["status"] == "error" and "no monitoring node" in answer["error"], answer
