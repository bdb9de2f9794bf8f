"""No forgotten cluster, on local nodes: with gpu_cluster_idle_minutes an idle cluster stops itself (every node's
container stops: the lifetime timer's ``systemctl poweroff`` ends the node's systemd, PID 1 of the container) within
the idle time + 1 minute, while a cluster running a job (an ``aiinfra-torchrun-*`` unit) stays up past it; the
instance module reports each node's deadline (gpu_cluster_ttl).

Marked ``lifetime`` (minutes of waiting): ``make test-lifetime``, not in the default suite.
"""

from __future__ import annotations

import time

import pytest

from conftest import cluster_leftovers, destroy_cluster, local_name, podman, run_playbook, task_results, write_inventory

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import epoch_of

pytestmark = pytest.mark.lifetime

IDLE_MINUTES = 1
JOB_UNIT = "aiinfra-torchrun-spot-lifetime-test"


def running(container):
    out = podman("inspect", "-f", "{{.State.Running}}", container, check=False).stdout.strip()
    return out == "true"


def provision(tmp_path, cluster, **extra):
    inv = write_inventory(tmp_path / cluster, cluster, size=2, extra=dict(gpu_cluster_idle_minutes=IDLE_MINUTES, **extra))
    proc = run_playbook("playbooks/provision.yml", inventory=inv, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    return inv, task_results(proc.stdout)


def test_an_idle_cluster_stops_itself_within_the_idle_time_and_a_minute_a_busy_one_stays_up(tmp_path):
    busy, idle = local_name("spot-busy"), local_name("spot-idle")
    try:
        # the busy cluster first: its job starts right after provisioning, well inside its idle time
        _inv, results = provision(tmp_path, busy, gpu_cluster_ttl=0.5)
        for rank in range(2):
            podman("exec", "%s-%d" % (busy, rank), "systemd-run", "--unit", JOB_UNIT, "sleep", "3600")
        job_started = time.time()
        nodes = results["Create the nodes"]["nodes"]
        for node in nodes:
            # the TTL is the node's: its launch time (the container's creation) + 30 minutes, as a tag and a deadline
            assert node["ttl_minutes"] == 30
            assert epoch_of(node["deadline"]) == epoch_of(node["launch_time"]) + 1800, node
            assert node["hostvars"]["gpu_cluster_deadline"] == node["deadline"]

        idle_inventory, _results = provision(tmp_path, idle)
        provisioned = time.time()  # the idle cluster's timers started before this
        limit = provisioned + IDLE_MINUTES * 60 + 60
        stopped = {}
        while time.time() < limit + 30 and len(stopped) < 2:
            for rank in range(2):
                name = "%s-%d" % (idle, rank)
                if name not in stopped and not running(name):
                    stopped[name] = time.time()
            time.sleep(3)
        assert len(stopped) == 2, "still running %.0f s after provisioning: %s" % (
            time.time() - provisioned, sorted(set("%s-%d" % (idle, r) for r in range(2)) - set(stopped)))
        for name, when in sorted(stopped.items()):
            assert when <= limit, "%s stopped %.0f s after provisioning (limit %d s)" % (
                name, when - provisioned, IDLE_MINUTES * 60 + 60)
            copied = tmp_path / ("%s.stopped" % name)
            podman("cp", "%s:/var/lib/aiinfra-lifetime/stopped" % name, str(copied))
            reason = copied.read_text()
            assert "idle for" in reason, reason
            print("%s stopped %.0f s after provisioning: %s" % (name, when - provisioned, reason.strip()))

        # the busy cluster has been past its idle time with its job running: still up
        while time.time() < job_started + IDLE_MINUTES * 60 + 45:
            time.sleep(3)
        for rank in range(2):
            name = "%s-%d" % (busy, rank)
            assert running(name), "%s stopped although its job ran" % name
            state = podman("exec", name, "cat", "/var/lib/aiinfra-lifetime/state.json").stdout
            assert JOB_UNIT in state, state

        # teardown removes a cluster whose nodes stopped themselves like any other
        run_playbook("playbooks/teardown.yml", inventory=idle_inventory, timeout=600)
        assert cluster_leftovers(idle) == []
    finally:
        destroy_cluster(busy)
        destroy_cluster(idle)
