"""The monitoring role on real local nodes: Debian's prometheus-node-exporter on every node and Debian's
prometheus on rank 0, bound to the private addresses; Prometheus' HTTP API asked through the SSH tunnel the
README shows; a re-run changes nothing; scaling 2 -> 3 and re-running adds the third target; the exporter
firewall keeps the exporter ports to the Prometheus node; gpu_cluster_monitoring=false skips the play.

One cluster, made once and reused by every assertion (the budget for this file is a few minutes).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import KEY, inventory_list, podman, run_playbook, write_inventory

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import utilisation

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.M)


def recap(output):
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group("host"), (int(m.group("changed")), int(m.group("failed")))) for m in RECAP.finditer(tail))


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tunnel(inventory, cluster):
    """The README's command: ssh -N -L <port>:<rank 0's private address>:9090 <user>@<rank 0's SSH host>."""
    hosts = inventory_list(inventory)["_meta"]["hostvars"]
    node = hosts["%s-0" % cluster]
    port = free_port()
    cmd = ["ssh", "-N", "-L", "%d:%s:9090" % (port, node["gpu_cluster_private_address"]),
           "-p", str(node["ansible_port"]), "-i", KEY, "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
           "%s@%s" % ("gpuadmin", node["ansible_host"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("the SSH tunnel did not come up: %s" % (proc.stderr.read() if proc.poll()
                                                                                 is not None else "timeout"))
                time.sleep(0.3)
        yield "http://127.0.0.1:%d" % port
    finally:
        # closing the tunnel is cleanup, not the test: ssh that has not ended 10 s after SIGTERM (CI, a loaded
        # controller) is killed
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def api(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def node_targets(base, want, timeout=60):
    """Prometheus' node-exporter targets once ``want`` of them are up (or what it has at the timeout)."""
    deadline = time.time() + timeout
    while True:
        targets = [t for t in api(base, "/api/v1/targets", state="active")["activeTargets"]
                   if t["labels"]["job"] == "node"]
        if len([t for t in targets if t["health"] == "up"]) == want or time.time() > deadline:
            return targets
        time.sleep(2)


def sh(node, command):
    return podman("exec", node, "sh", "-c", command, check=False)


def listeners(node):
    """{port: [local addresses]} of the TCP listeners on a node."""
    out = sh(node, "ss -Hltn").stdout
    ports = {}
    for line in out.splitlines():
        local = line.split()[3]
        addr, port = local.rsplit(":", 1)
        ports.setdefault(int(port), []).append(addr)
    return ports


def report_from_the_runs_window(tmp_path, inv, nodes):
    """The report's utilisation comes from Prometheus over the run's own window: CPU and memory per node, the
    GPU panel "no GPU"; cost 0 on local nodes."""
    run_dir = tmp_path / "runs" / "util"
    proc = run_playbook("tests/integration/playbooks/utilisation_report.yml", inventory=inv,
                        extra_vars={"run_dir": str(run_dir), "burn_seconds": 12})
    summary = json.loads((run_dir / "summary.json").read_text())
    util = summary["utilisation"]
    start, end = util["window"]
    assert start == summary["started"] and end == summary["ended"] and 12 <= end - start < 120
    for key in ("cpu", "memory"):
        panel = util["panels"][key]
        assert panel["status"] == "ok" and list(panel["nodes"]) == nodes, panel
        for series in panel["nodes"].values():
            assert len(series["t"]) >= 3 and 0 <= series["t"][0] and series["t"][-1] <= end - start
            assert all(0 <= v <= 100 for v in series["v"])
    # CPU: rank 1 burnt a core during the window (the local nodes share the controller's CPUs and /proc/stat)
    assert util["nodes"][nodes[1]]["cpu_max"] > 0
    assert util["panels"]["gpu"]["status"] == "empty"
    assert all(util["nodes"][n]["gpu"] == "no GPU" for n in nodes)
    assert summary["cost"]["run"]["cost"] == 0.0 and summary["cost"]["run"]["node_hours"] > 0
    text = " ".join(proc.stdout.split())
    assert "utilisation (mean over the run): %s CPU" % nodes[0] in text and "no GPU" in text
    assert "cost of the run: $0.00" in text
    png = run_dir / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same window asked from the controller through the tunnel gives the same nodes and panels
    with tunnel(inv, nodes[0].rsplit("-", 1)[0]) as base:
        shaped = utilisation.shape(utilisation.fetch(base, start, end, scrape_interval=10), start, end, nodes)
    assert [(k, p["status"], list(p["nodes"])) for k, p in sorted(shaped["panels"].items())] == \
        [(k, p["status"], list(p["nodes"])) for k, p in sorted(util["panels"].items())]
    return png


def test_monitoring_on_local_nodes(tmp_path, cluster_name):
    inv = write_inventory(tmp_path, cluster_name, size=2)
    run_playbook("playbooks/provision.yml", inventory=inv)
    nodes = ["%s-%d" % (cluster_name, rank) for rank in range(3)]
    hostvars = inventory_list(inv)["_meta"]["hostvars"]
    private = dict((n, hostvars[n]["gpu_cluster_private_address"]) for n in nodes[:2])

    first = run_playbook("playbooks/monitoring.yml", inventory=inv)
    text = " ".join(first.stdout.split())
    assert "monitoring: Prometheus on %s (%s:9090) scrapes 3 targets, all up" % (nodes[0], private[nodes[0]]) in text
    assert "tunnel: ssh -N -L 9090:%s:9090 gpuadmin@" % private[nodes[0]] in text
    # the DCGM path is not taken on nodes without a GPU (its templates are asserted in tests/unit/roles)
    assert "Install the DCGM exporter" not in first.stdout

    # bound to the private address only: node exporter everywhere, Prometheus on rank 0 only
    for node in nodes[:2]:
        ports = listeners(node)
        assert ports.get(9100) == [private[node]], ports
        assert 9400 not in ports
    assert listeners(nodes[0]).get(9090) == [private[nodes[0]]]
    assert 9090 not in listeners(nodes[1])
    assert sh(nodes[0], "cat /etc/prometheus/rules/aiinfra-gpu-cluster.rules.yml").stdout.count("- alert:") == 6

    again = run_playbook("playbooks/monitoring.yml", inventory=inv)
    assert all(changed == 0 and failed == 0 for changed, failed in recap(again.stdout).values()), \
        "\n".join(ln for ln in again.stdout.splitlines() if ln.startswith("changed"))

    with tunnel(inv, cluster_name) as base:
        targets = node_targets(base, 2)
        assert sorted((t["labels"]["node"], t["labels"]["rank"], t["labels"]["cluster"], t["health"]) for t in targets) \
            == [(nodes[0], "0", cluster_name, "up"), (nodes[1], "1", cluster_name, "up")]
        assert sorted(t["scrapeUrl"] for t in targets) == sorted("http://%s:9100/metrics" % private[n] for n in nodes[:2])
        up = api(base, "/api/v1/query", query='up{job="node"}')["result"]
        assert sorted((r["metric"]["node"], r["value"][1]) for r in up) == [(nodes[0], "1"), (nodes[1], "1")]
        rules = [r["name"] for g in api(base, "/api/v1/rules")["groups"] for r in g["rules"]]
        assert sorted(rules) == sorted(["NodeDown", "GpuXidError", "GpuEccUncorrectable", "GpuEccCorrectable",
                                        "GpusIdleDuringRun", "TrainingRankGone"])
        # the systemd collector sees the units the alert rules read
        assert api(base, "/api/v1/query", query='node_systemd_unit_state{name="prometheus.service",state="active"}')[
            "result"][0]["value"][1] == "1"

    report_from_the_runs_window(tmp_path, inv, nodes[:2])

    # scale 2 -> 3 and re-run: the third node is scraped, Prometheus not restarted (file-based discovery)
    started = sh(nodes[0], "systemctl show -p ExecMainStartTimestampMonotonic prometheus").stdout
    inv3 = write_inventory(tmp_path, cluster_name, size=3)
    run_playbook("playbooks/provision.yml", inventory=inv3)
    run_playbook("playbooks/monitoring.yml", inventory=inv3)
    assert sh(nodes[0], "systemctl show -p ExecMainStartTimestampMonotonic prometheus").stdout == started
    with tunnel(inv3, cluster_name) as base:
        targets = node_targets(base, 3)
        assert sorted((t["labels"]["node"], t["health"]) for t in targets) == [(n, "up") for n in nodes]

    # the exporter firewall (on by default on clouds whose network lets every cluster node reach every port; the
    # local network is private already, so it is asked for here): exporters answer the Prometheus node only,
    # Prometheus its own node only (the tunnel)
    run_playbook("playbooks/monitoring.yml", "-e", "monitoring_exporter_firewall=always", inventory=inv3)
    private[nodes[2]] = inventory_list(inv3)["_meta"]["hostvars"][nodes[2]]["gpu_cluster_private_address"]
    probe = "python3 -c 'import socket; socket.create_connection((\"%s\", %d), 3)'"
    assert sh(nodes[0], probe % (private[nodes[2]], 9100)).returncode == 0
    assert sh(nodes[1], probe % (private[nodes[2]], 9100)).returncode != 0
    assert sh(nodes[1], probe % (private[nodes[0]], 9090)).returncode != 0
    with tunnel(inv3, cluster_name) as base:
        assert sorted((t["labels"]["node"], t["health"]) for t in node_targets(base, 3, timeout=30)) == \
            [(n, "up") for n in nodes]

    # gpu_cluster_monitoring=false: the play ends before the role
    off = run_playbook("playbooks/monitoring.yml", "-e", "gpu_cluster_monitoring=false", inventory=inv3)
    assert "Exporters and Prometheus" not in off.stdout and "Skip when monitoring is off" in off.stdout

    # cost: local nodes carry their launch time and a price of 0; teardown says what the cluster cost
    hostvars = inventory_list(inv3)["_meta"]["hostvars"]
    assert all(hostvars[n]["gpu_cluster_price"]["hourly"] == 0.0 and hostvars[n]["gpu_cluster_launch_time"]
               for n in nodes)
    down = " ".join(run_playbook("playbooks/teardown.yml", inventory=inv3).stdout.split())
    assert re.search(r"cluster %s cost \$0\.00 \(0\.\d\d node-hours; 3 x local node on-demand at \$0\.00/h\), "
                     r"from the launch of its first node at 20\d\d-\S+ until its deletion" % cluster_name, down), down[-2000:]
