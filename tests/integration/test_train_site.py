"""site.yml end to end on 2 fresh local nodes: provision -> configure -> verify -> train, run as AWX runs it
(ansible-runner over the collection's example AWX project, the collection installed from the built tarball,
survey answers as strings, the Machine key in an ssh-agent, no ansible.cfg of ours), then a teardown job;
configure.yml run again on those nodes from the checkout changes nothing (the roles are idempotent on nodes they
configured from scratch); and the torchrun role's Docker mode on nodes configure.yml gave Docker.

The run report must show world size = nodes x processes and a loss that went down; verify.yml must
have checked that every node runs the same torch and that an all-reduce over every rank is right; the job
must publish the run's summary with set_stats.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

import awx_job
from conftest import KEY, ROOT, VENV_BIN, ansible_env, cluster_leftovers, podman, run_playbook, write_inventory

pytestmark = pytest.mark.slow

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)", re.M)


def play_recap(output):
    """{host: {ok, changed, unreachable, failed, skipped}} from the PLAY RECAP."""
    tail = output[output.rindex("PLAY RECAP"):]
    return dict((m.group("host"), dict((k, int(v)) for k, v in m.groupdict().items() if k != "host"))
                for m in RECAP.finditer(tail))


# issue 19 (a run that reads well): of a clean run's output lines at most this share are skips
SKIP_SHARE_MAX = 0.05


def reads_well(text, report_task, skip_share=SKIP_SHARE_MAX):
    """A clean run's output: no warning, at most skip_share of its lines are skips (branches that do not apply
    are files not included, not a skipped task per node), and report_task is the last task before PLAY RECAP.
    skip_share None: the whole demo's budget does not apply (a short run of one playbook)."""
    lines = text.splitlines()
    warnings = [line for line in lines if "[WARNING]" in line or "[DEPRECATION WARNING]" in line]
    assert not warnings, warnings
    skips = [line for line in lines if line.startswith("skipping:")]
    assert skip_share is None or (len(lines) > 100 and len(skips) <= skip_share * len(lines)), (
        "%d of %d lines are skips (%.1f %%): %s" % (len(skips), len(lines), 100.0 * len(skips) / len(lines),
                                                    skipped_tasks(lines)))
    recap = text.rindex("PLAY RECAP")
    last_task = text[text.rindex("TASK [", 0, recap):recap]
    assert last_task.startswith("TASK [%s]" % report_task), last_task[-3000:]
    return len(lines), len(skips)


def skipped_tasks(lines):
    """{task header: skip lines} (what to restructure when the share grows)."""
    counts, task = {}, None
    for line in lines:
        if line.startswith("TASK ["):
            task = line.rstrip(" *")
        elif line.startswith("skipping:"):
            counts[task] = counts.get(task, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])


SITE_PLAYS = ["Provision the cluster",
              "The nodes' lifetime (gpu_cluster_ttl, gpu_cluster_idle_minutes) and spot notices",
              "Check every node and the whole plan before installing anything",
              "Configure the nodes", "Every node answers over SSH", "Monitoring (exporters, Prometheus, alert rules)",
              "Slurm (scheduler, accounting, users)", "Check there is a cluster to verify",
              "Verify the nodes", "Stage the dataset", "Check there is a cluster to train on",
              "Check the job's settings", "Health gate (skip with -e gpu_cluster_health=false)", "Train"]


def test_site_end_to_end_on_two_fresh_nodes(tmp_path, cluster_name, monkeypatch):
    runs = tmp_path / "runs"
    tarball = awx_job.build_tarball(tmp_path / "dist")
    with open(KEY + ".pub") as handle:
        public_key = handle.read().strip()
    answers = awx_job.survey_answers("GPU cluster: site", gpu_cluster_name=cluster_name, gpu_cluster_size=2,
                                     gpu_cluster_train_script_args="--steps 300 --log-every 10")
    # local is no survey choice (an execution environment has no podman): here, with no EE, the job is given it
    answers["gpu_cluster_cloud"] = "local"
    credential_vars = {"gpu_cluster_ssh_public_key": public_key}      # "aiinfra GPU cluster access"
    pdd = awx_job.private_data_dir(
        tmp_path, tarball, dict(answers, **credential_vars), {"GPU_CLUSTER_ADMIN_CIDRS": "203.0.113.0/24"}, KEY,
        inventory_vars={"torchrun_cpu_nproc_per_node": 2, "torchrun_runs_dir": str(runs)})
    result, events = awx_job.run_job(pdd, "site.yml", "site", monkeypatch)
    text = awx_job.job_output(events, tail=10 ** 7)
    assert result.rc == 0 and result.status == "successful", awx_job.job_output(events)

    # per play: what ran and that nothing failed
    plays = awx_job.play_stats(events)
    assert [p["play"] for p in plays] == SITE_PLAYS, plays
    assert all(p["failed"] == 0 and p["unreachable"] == 0 for p in plays), plays
    # no dataset_uri: the data play is there, and does nothing (its one ok: the cluster-name check, once a play)
    assert all((p["ok"] == 1 and p["changed"] == 0) if p["play"] == "Stage the dataset" else p["ok"] > 0
               for p in plays), plays
    assert plays[0]["changed"] >= 1                                   # the nodes were made
    stats = awx_job.final_stats(events)
    nodes = ["%s-%d" % (cluster_name, rank) for rank in range(2)]
    assert sorted(stats["processed"]) == sorted(["localhost"] + nodes)
    assert not stats["failures"] and not stats["dark"], stats
    # the run's summary, published with set_stats: AWX's job artifacts
    published = stats["artifact_data"]["gpu_cluster_run"]
    assert published["status"] == "succeeded" and published["job"] == "example" and published["world_size"] == 4
    assert published["metrics"]["last_step"] == 300 and "steps" not in published
    assert [n["exit_code"] for n in published["nodes"]] == [0, 0] and not [n for n in published["nodes"] if "log_tail" in n]
    assert published["run_dir"] == str(runs / published["run_id"])
    # the key came from the ssh-agent: no key pair made, the nodes added without a key file
    assert "Made an SSH key pair" not in text
    added = [e["event_data"]["res"]["add_host"] for e in events if e["event"] == "runner_item_on_ok"
             and e["event_data"].get("task") == "Add the nodes to gpu_nodes in rank order"]
    assert sorted(a["host_name"] for a in added) == nodes
    assert not [a for a in added if "ansible_ssh_private_key_file" in a["host_vars"]], added

    out = " ".join(text.split())
    summaries = dict((s["job"], s) for s in (json.loads(p.read_text()) for p in runs.glob("*/summary.json")))
    assert sorted(summaries) == ["example", "verify"], sorted(summaries)

    verify = summaries["verify"]
    assert verify["status"] == "succeeded" and verify["world_size"] == 4
    assert all(n["last_metrics"]["all_ranks_ok"] and n["last_metrics"]["got"] == 10.0 for n in verify["nodes"])
    assert "every node runs torch 2.13.0+cpu" in out
    assert "sum correct" in out and "bus bandwidth" in out

    train = summaries["example"]
    assert train["status"] == "succeeded" and train["exit_code"] == 0
    assert train["nnodes"] == 2 and train["world_size"] == 4 and train["ranks_reported"] == [0, 1, 2, 3]
    assert [n["exit_code"] for n in train["nodes"]] == [0, 0]
    metrics = train["metrics"]
    assert metrics["loss_went_down"] and metrics["last_loss"] < 0.5 * metrics["first_loss"], metrics
    assert metrics["eval_acc"] > 0.6, metrics  # chance is 0.125
    run_dir = runs / train["run_id"]
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "torchrun run %s (job example): SUCCEEDED" % train["run_id"] in text
    assert "2 nodes, world size 4, ranks reported: 4/4, aggregate exit code 0" in text
    assert published["run_id"] == train["run_id"]
    # it reads well: no warning, few skips, the report is the last thing before PLAY RECAP (and it is the report)
    reads_well(text, "The run's report")
    report = text[text.rindex("TASK [The run's report]"):text.rindex("PLAY RECAP")]
    assert "torchrun run %s (job example): SUCCEEDED" % train["run_id"] in report

    # what the configure roles said they did on the fresh nodes, once per node
    assert [p["changed"] for p in plays if p["play"] == "Configure the nodes"][0] > 0, plays
    assert out.count("nvidia_driver: no NVIDIA GPU here; nothing installed") == 2
    assert out.count("pytorch: torch 2.13.0+cpu works in /opt/aiinfra/pytorch: gloo process group of 2 all-reduced") == 2
    assert len(re.findall(r"docker: \S+ running", out)) == 2

    # configure.yml again on the nodes site.yml configured, from the checkout with default forks: nothing changes
    inventory = write_inventory(tmp_path, cluster_name, 2, extra={
        "torchrun_cpu_nproc_per_node": 2, "torchrun_runs_dir": str(runs)})
    again = run_playbook("playbooks/configure.yml", inventory=inventory)
    recap = dict((h, r) for h, r in play_recap(again.stdout).items() if h.startswith(cluster_name + "-"))
    assert sorted(recap) == nodes, again.stdout[-3000:]
    for host, counts in recap.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
        assert counts["changed"] == 0, "configure.yml again changed %s on %s:\n%s" % (
            counts["changed"], host, "\n".join(ln for ln in again.stdout.splitlines() if ln.startswith("changed")))

    # the same nodes, which configure.yml gave Docker: the job inside containers (from the checkout, the
    # inventory plugin finding the nodes)
    docker_mode(inventory, runs, cluster_name)

    # the teardown job template, its survey's answers: nothing carrying the cluster id is left
    result, events = awx_job.run_job(pdd, "teardown.yml", "teardown", monkeypatch, extravars=dict(
        awx_job.survey_answers("GPU cluster: teardown", gpu_cluster_name=cluster_name), gpu_cluster_cloud="local",
        **credential_vars))
    assert result.rc == 0, awx_job.job_output(events)
    # two changes: the cluster's containers and network, and its known-hosts file (host keys are per cluster)
    assert awx_job.final_stats(events)["changed"] == {"localhost": 2}
    assert cluster_leftovers(cluster_name) == []


# The nodes site.yml configured have Docker: the same role runs the job inside a container. No registry
# is reachable, so the image is made on each node: an empty root with the node's /usr and PyTorch
# virtualenv mounted read-only (the role's torchrun_docker_mounts), i.e. the host's torch in a container.
IMAGE_SCRIPT = r"""set -e
rm -rf /tmp/aiinfra-img && mkdir -p /tmp/aiinfra-img && cd /tmp/aiinfra-img
mkdir -p usr etc tmp proc sys dev opt/aiinfra var/lib/aiinfra root
ln -s usr/bin bin && ln -s usr/lib lib && ln -s usr/lib64 lib64 && ln -s usr/sbin sbin
cp /etc/passwd /etc/group etc/
tar -c . | docker import - aiinfra-host-torch:test >/dev/null
rm -rf /tmp/aiinfra-img
"""
DOCKER = {"torchrun_docker_image": "aiinfra-host-torch:test",
          "torchrun_docker_torchrun": "/opt/aiinfra/pytorch/bin/torchrun",
          "torchrun_docker_mounts": ["/usr:/usr:ro", "/opt/aiinfra/pytorch:/opt/aiinfra/pytorch:ro"],
          "torchrun_job_name": "indocker", "torchrun_cpu_nproc_per_node": 1}


def node_sh(node, command):
    return podman("exec", node, "sh", "-c", command, check=False)


def nothing_left(nodes, run_id):
    for node in nodes:
        assert node_sh(node, "docker ps -aq --filter label=aiinfra-torchrun-run=%s" % run_id).stdout.strip() == ""
        procs = node_sh(node, "ps -eo args=").stdout
        assert "train_example.py" not in procs and "bin/torchrun" not in procs, procs
        assert node_sh(node, "systemctl is-active aiinfra-torchrun-%s" % run_id).stdout.strip() != "active"


def docker_mode(inventory, runs, cluster_name):
    """train.yml in Docker mode (a second invocation: the inventory plugin finds the nodes).

    Where Docker on the node can start containers: the job runs in them, and a run stopped with
    torchrun_state=stopped leaves no container and no worker. Where it cannot (Docker nested in the local
    nodes' podman containers fails to set up cgroups, see the report): the launch fails cleanly, naming
    the node with Docker's own error, and leaves nothing behind.
    """
    nodes = ["%s-%d" % (cluster_name, rank) for rank in range(2)]
    for node in nodes:
        made = node_sh(node, IMAGE_SCRIPT)
        assert made.returncode == 0, made.stderr
    probe = node_sh(nodes[0], "docker run --rm -v /usr:/usr:ro aiinfra-host-torch:test /usr/bin/true")
    proc = run_playbook("playbooks/train.yml", inventory=inventory, check=False, timeout=900, extra_vars=dict(
        DOCKER, torchrun_run_id="dock", torchrun_script_args=["--steps", "40"]))
    text = " ".join(proc.stdout.split())
    assert "started: cd /var/lib/aiinfra/torchrun/jobs/indocker && docker run --rm --name aiinfra-torchrun-dock " \
           "--network host --ipc host --init" in text
    assert "--gpus" not in text  # CPU nodes
    summary = json.loads((runs / "dock" / "summary.json").read_text())
    if probe.returncode != 0:
        assert proc.returncode != 0
        assert summary["status"] == "failed" and summary["exit_code"] == 127
        assert re.search(r"torchrun run dock failed: the rendezvous failed before it completed; did not join: "
                         r"%s-[01] \(node rank [01]\): torchrun ended with exit code 127" % cluster_name, text), text[-3000:]
        assert "docker: Error response from daemon" in text  # the node's log tail, in the failure message
        nothing_left(nodes, "dock")
        return
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert summary["status"] == "succeeded" and summary["world_size"] == 2
    assert summary["metrics"]["last_step"] == 40
    # train.yml alone, with the checkout's ansible.cfg: no warning, the report last (the 5 % budget is the demo's)
    reads_well(proc.stdout, "The run's report", skip_share=None)
    nothing_left(nodes, "dock")

    # a long run, stopped from outside with torchrun_state=stopped: its containers and workers go
    long_run = dict(DOCKER, torchrun_run_id="dockstop", torchrun_script_args=["--steps", "5000", "--min-step-time",
                                                                              "0.05"])
    background = subprocess.Popen(
        [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/train.yml", "-i", inventory, "-e",
         json.dumps(long_run)], cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            log = node_sh(nodes[0], "cat /var/lib/aiinfra/torchrun/runs/dockstop/torchrun.log 2>/dev/null").stdout
            if '"event": "step"' in log:
                break
            assert background.poll() is None, background.stdout.read()[-4000:]
            time.sleep(2)
        for node in nodes:
            assert node_sh(node, "docker ps -q --filter label=aiinfra-torchrun-run=dockstop").stdout.strip()
        stop = run_playbook("playbooks/train.yml", inventory=inventory, timeout=300, extra_vars=dict(
            long_run, torchrun_state="stopped"))
        assert "run dockstop: stopped" in stop.stdout
        out = background.communicate(timeout=120)[0]
    finally:
        if background.poll() is None:
            os.killpg(background.pid, signal.SIGKILL)
    assert background.returncode != 0
    assert "torchrun run dockstop failed" in out
    nothing_left(nodes, "dockstop")
