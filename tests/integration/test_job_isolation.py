"""The job is untrusted code (issue 17), on one real 2-node local cluster with PyTorch and a moto S3 server.

In order, on the same cluster:

1. Bad input (a secret-looking torchrun_env name, a job name or user with a newline) fails the plan before
   anything starts.
2. Checkpoints with a fixed name (last.ckpt) on two nodes, written by rank 0 only: after every run the bucket
   holds the newest (the other node never pushes back what it restored); a file a killed job left half-written
   is never restored; a resumed run re-uploads nothing it restored.
3. A hostile job (tests/integration/files/hostile_job.py) runs as the job's user with a secret given through
   torchrun_secret_env, at -vvv: sudo fails; it cannot read the secret anywhere but its own environment, nor the
   uploader's credentials, nor write anything root later reads or runs; the secret is in no process's command line
   on any node, in no line of the play's output, no file of the controller's run directory. It then plants links to
   root's files in its directories; the packing of its outputs and its uploader follow none of them, and the next
   two launches of the same job (with and without checkpoints) refuse them, naming them. Nothing outside the job's
   directories changed owner, mode or content; no root-only byte reached the controller or the bucket.
4. The rendezvous port answers the cluster's nodes and refuses a container on another network.

Everything (the cluster, the S3 server, the other network) is removed at the end, pass or fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import time

import pytest

from conftest import ROOT, VENV_BIN, ansible_env, configured_image, destroy_cluster, events, local_name, podman, \
    run_playbook, unique_name, write_inventory
from s3_server import S3Server

TRAIN = "playbooks/train.yml"
BUCKET = "iso"
SCRIPT = os.path.join(ROOT, "tests", "integration", "files", "hostile_job.py")
JOB_SECRET = "hf_iso-job-secret-3f9a1c"
ROOT_BYTES = "root-only-bytes-7d41e0"
BASE = "/var/lib/aiinfra/torchrun"
VICTIMS = {"/root/aiinfra-test-secret": "0600", "/etc/aiinfra-test-victim": "0644",
           "/etc/aiinfra-test-victim.d": "0755", "/etc/aiinfra-test-victim.d/f": "0600"}
# owner, group and mode of everything; size, mtime and link target of all but directories (a directory's mtime
# changes with a new entry, e.g. the job's working directory: its entries are compared themselves)
SNAPSHOT = ("find /etc /root /opt/aiinfra /usr/local %s -xdev \\( -path %s/jobs/hostile -o -path %s/jobs/hostiled "
            "-o -path %s/runs -o -path /etc/aiinfra/torchrun \\) -prune -o \\( -type d -printf '%%p %%U %%G %%m\\n' \\) "
            "-o -printf '%%p %%U %%G %%m %%s %%T@ %%l\\n' | sort; "
            "sha256sum /root/aiinfra-test-secret /etc/aiinfra-test-victim /etc/aiinfra-test-victim.d/f" % (
                BASE, BASE, BASE, BASE))


def sh(node, command):
    return podman("exec", node, "sh", "-c", command, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iso")
    name = local_name("iso")
    state = {"name": name, "tmp": tmp, "nodes": ["%s-%d" % (name, r) for r in range(2)], "s3": None, "nets": []}
    try:
        image = configured_image()  # tests/conftest.py: a configured node, when one was saved
        state["inventory"] = write_inventory(tmp, name, 2, extra={"gpu_cluster_image": image} if image else None)
        run_playbook("playbooks/provision.yml", inventory=state["inventory"], timeout=900)
        run_playbook("tests/integration/playbooks/pytorch_nodes.yml", inventory=state["inventory"], timeout=1500)
        state["s3"] = S3Server(name).start()
        state["s3"].client().create_bucket(Bucket=BUCKET)
        for node in state["nodes"]:
            made = sh(node, "umask 077; printf %s > /root/aiinfra-test-secret; printf victim > /etc/aiinfra-test-victim; "
                            "chmod 644 /etc/aiinfra-test-victim; mkdir -m 755 /etc/aiinfra-test-victim.d; "
                            "printf %s > /etc/aiinfra-test-victim.d/f" % (ROOT_BYTES, ROOT_BYTES))
            assert made.returncode == 0, made.stderr
        yield state
    finally:
        if state["s3"] is not None:
            state["s3"].stop()
        for net in state["nets"]:
            podman("network", "rm", "-f", net, check=False)
        destroy_cluster(name)


def vars_file(cluster, extra):
    """The play's settings in a file (-e @file), as a vault-encrypted vars file would give them: no secret on the
    controller's command line."""
    path = cluster["tmp"] / ("vars-%s.json" % unique_name("v"))
    path.write_text(json.dumps(extra))
    return "@%s" % path


def settings(cluster, run_id, job, args, **extra):
    out = {"torchrun_runs_dir": str(cluster["tmp"] / "runs"), "torchrun_run_id": run_id, "torchrun_job_name": job,
           "torchrun_script": SCRIPT, "torchrun_script_args": args, "torchrun_nproc_per_node": 1,
           "torchrun_progress_interval": 5, "torchrun_checkpoint_interval": 1,
           "torchrun_checkpoint_stable_seconds": 1, "torchrun_rdzv_timeout": 420,
           "gpu_cluster_storage_options": cluster["s3"].options()}
    out.update(extra)
    return out


def train(cluster, run_id, job, args, *flags, **extra):
    return run_playbook(TRAIN, "-e", vars_file(cluster, settings(cluster, run_id, job, args, **extra)), *flags,
                        inventory=cluster["inventory"], check=False, timeout=600)


def summary(cluster, run_id):
    path = cluster["tmp"] / "runs" / run_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def node_events(cluster, run_id, event):
    found = []
    for node in cluster["nodes"]:
        found.extend(events(sh(node, "cat %s/runs/%s/torchrun.log" % (BASE, run_id)).stdout, event))
    return found


def bucket(cluster, prefix):
    client = cluster["s3"].client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents") or []
    return dict((o["Key"][len(prefix) + 1:], client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
                for o in listed)


def no_units(cluster):
    for node in cluster["nodes"]:
        units = sh(node, "systemctl list-units --no-legend --plain --state=active 'aiinfra-torchrun-*' "
                         "'aiinfra-ckpt-*'").stdout
        assert units.strip() == "", (node, units)


def watched_train(cluster, run_id, args, capture):
    """train.yml at -vvv in the background; ``capture(node)`` (a dict) on every node once its job has said what it
    found (while it lingers). Returns (exit status, the play's output, {node: capture(node)})."""
    path = cluster["tmp"] / ("%s.out" % run_id)
    with open(path, "w") as out:
        proc = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), TRAIN, "-i", cluster["inventory"], "-e",
                                 vars_file(cluster, args), "-vvv"], cwd=ROOT, stdout=out,
                                # the run's set_stats artifact (what AWX keeps) printed at the end of the output too
                                env=ansible_env({"ANSIBLE_SHOW_CUSTOM_STATS": "1"}),
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline, seen = time.time() + 400, {}
            while time.time() < deadline and proc.poll() is None and len(seen) < len(cluster["nodes"]):
                for node in cluster["nodes"]:
                    log = sh(node, "systemctl is-active --quiet aiinfra-torchrun-%s && cat %s/runs/%s/torchrun.log"
                                   % (run_id, BASE, run_id)).stdout
                    if node not in seen and '"event": "hostile"' in log:
                        seen[node] = capture(node)
                time.sleep(1)
            assert len(seen) == len(cluster["nodes"]), path.read_text()[-4000:]
            rc = proc.wait(timeout=500)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(30)
    return rc, path.read_text(), seen


def primed(cluster):
    """What any first launch with checkpoints does once to a node (the job's and the uploader's users, the host
    firewall, the storage client) done before a test takes its snapshot of the node, whatever ran before it."""
    if not cluster.get("primed"):
        proc = train(cluster, "prime-%s" % unique_name("p"), "prime", ["--mode", "ckpt", "--job", "prime"],
                     torchrun_checkpoint_uri="s3://%s/prime" % BUCKET)
        assert proc.returncode == 0, proc.stdout[-4000:]
        cluster["primed"] = True


def seed_sub_checkpoint(cluster, prefix):
    """A complete checkpoint under a subdirectory of the checkpoint directory: the next restore writes through sub/."""
    client = cluster["s3"].client()
    marker = ("%s  f.ckpt\n" % hashlib.sha256(b"step=1\n").hexdigest()).encode()
    for key, body in (("sub/f.ckpt", b"step=1\n"), ("sub/f.ckpt.sha256", marker)):
        client.put_object(Bucket=BUCKET, Key="%s/%s" % (prefix, key), Body=body,
                          Metadata={"sha256": hashlib.sha256(body).hexdigest()})


def planted_links(cluster, run_id, job):
    """{node: links its job planted}; (the node that linked its whole checkpoint directory, the one that linked a
    subdirectory of it): global rank 0 does the first, the rendezvous decides which node that is."""
    ckpt_dir = "%s/jobs/%s/checkpoints" % (BASE, job)
    planted = {}
    for node in cluster["nodes"]:
        for event in events(sh(node, "cat %s/runs/%s/torchrun.log" % (BASE, run_id)).stdout, "planted"):
            planted[node] = event["links"]
    assert not [link for links in planted.values() for link in links if link.startswith("FAILED")], planted
    whole = [n for n, links in planted.items() if ckpt_dir in links]
    sub = [n for n, links in planted.items() if ckpt_dir + "/sub" in links]
    assert len(whole) == 1 and len(sub) == 1 and whole != sub, planted
    return whole[0], sub[0]


def refused(cluster, text, node, link):
    """The verdict names the node and, in what it says of that node (up to the next node named), the link it
    refused; the nodes are named in any order, and the node's name may also appear earlier in the play's output."""
    starts = sorted(set(m.start() for form in (r"%s:", r"%s ") for m in re.finditer(form % re.escape(node), text)))
    for at in starts:
        ends = [text.find(other, at + len(node)) for other in cluster["nodes"] if other != node]
        part = text[at:min([e for e in ends if e >= 0] or [len(text)])]
        if any(form % link in part for form in ("%s: a symbolic link", "%s is a symbolic link")):
            return True
    return False


# -- 1 ------------------------------------------------------------------------------------------------------------

BAD = [
    ("secret-looking-env", {"torchrun_env": {"HF_TOKEN": JOB_SECRET}},
     "torchrun_env: HF_TOKEN looks like a secret (*TOKEN*, *SECRET*, *PASSWORD*, *_KEY): give it in "
     "torchrun_secret_env"),
    ("job-name-newline", {"torchrun_job_name": "exp\n"}, "torchrun_job_name must be 1-64"),
    ("user-newline", {"torchrun_user": "aiinfra-job\nroot"}, "torchrun_user must be a user name"),
]


@pytest.mark.parametrize("extra, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_fails_before_anything_starts(cluster, extra, message):
    run_id = "bad-%s" % unique_name("b")
    extra = dict(extra)
    job = extra.pop("torchrun_job_name", "badjob")
    proc = train(cluster, run_id, job, [], **extra)
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and message in text, proc.stdout[-3000:]
    assert JOB_SECRET not in proc.stdout
    no_units(cluster)
    for node in cluster["nodes"]:
        assert sh(node, "test -e %s/runs/%s && echo yes" % (BASE, run_id)).stdout.strip() == ""


# -- 2 ------------------------------------------------------------------------------------------------------------

def step_of(data):
    return int(data.split(b"\n")[0].split(b"=")[1])


def test_fixed_name_checkpoints_never_go_backwards_and_are_restored_only_complete(cluster):
    prefix = "fixed"
    extra = {"torchrun_checkpoint_uri": "s3://%s/%s" % (BUCKET, prefix)}
    # A: rank 0 writes step 100
    proc = train(cluster, "fix-a", "fixed", ["--mode", "ckpt", "--job", "fixed", "--step", "100"], **extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert step_of(bucket(cluster, prefix)["last.ckpt"]) == 100
    # B: both nodes restore 100; rank 0 writes 200; node 1 holds a stale 100 and must not push it back
    proc = train(cluster, "fix-b", "fixed", ["--mode", "ckpt", "--job", "fixed", "--step", "200"], **extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert sorted(e["step"] for e in node_events(cluster, "fix-b", "resumed")) == [100, 100]
    objects = bucket(cluster, prefix)
    assert step_of(objects["last.ckpt"]) == 200, objects["last.ckpt"][:20]
    ckpt = summary(cluster, "fix-b")["checkpoints"]
    assert ckpt["nodes"][cluster["nodes"][1]]["uploaded"] == 0, ckpt  # it wrote nothing: it sends nothing
    assert sorted(ckpt["nodes"][cluster["nodes"][0]]["uploaded_keys"]) == ["%s/last.ckpt" % prefix,
                                                                           "%s/last.ckpt.sha256" % prefix], ckpt
    # C: rank 0 rewrites last.ckpt in place, half, and is killed: the bucket keeps 200
    proc = train(cluster, "fix-c", "fixed", ["--mode", "ckpt", "--job", "fixed", "--step", "300", "--torn"], **extra)
    assert proc.returncode != 0 and "torchrun run fix-c failed" in proc.stdout, proc.stdout[-4000:]
    assert node_events(cluster, "fix-c", "torn")
    assert step_of(bucket(cluster, prefix)["last.ckpt"]) == 200
    # D: every node resumes at 200 (the torn file on rank 0's node is not taken) and uploads nothing
    proc = train(cluster, "fix-d", "fixed", ["--mode", "ckpt", "--job", "fixed"], **extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert sorted(e["step"] for e in node_events(cluster, "fix-d", "resumed")) == [200, 200]
    ckpt = summary(cluster, "fix-d")["checkpoints"]
    assert ckpt["uploaded_files"] == 0, ckpt  # a resumed run re-uploads nothing it restored
    assert step_of(bucket(cluster, prefix)["last.ckpt"]) == 200
    # the uploader's credentials are gone from the nodes after its last push
    for node in cluster["nodes"]:
        assert sh(node, "ls /etc/aiinfra/torchrun/").stdout.split() == [], node


# -- 3 ------------------------------------------------------------------------------------------------------------

def test_a_hostile_job_reaches_nothing_of_roots_and_no_secret(cluster):
    s3 = cluster["s3"]
    prefix = "hostile"
    seed_sub_checkpoint(cluster, prefix)
    primed(cluster)
    before = dict((node, sh(node, SNAPSHOT).stdout) for node in cluster["nodes"])
    extra = {"torchrun_checkpoint_uri": "s3://%s/%s" % (BUCKET, prefix),
             "torchrun_secret_env": {"HF_TOKEN": JOB_SECRET, "LOOK_FOR_HEX": s3.secret.encode().hex()}}
    args = settings(cluster, "hostile-1", "hostile", ["--job", "hostile", "--linger", "10"], **extra)
    rc, text, seen = watched_train(cluster, "hostile-1", args, lambda node: {"ps": sh(node, "ps -eo args").stdout})
    assert rc == 0, text[-5000:]
    assert "torchrun run hostile-1 (job hostile): SUCCEEDED" in text
    seen = dict((node, got["ps"]) for node, got in seen.items())
    for node, ps in seen.items():
        assert "hostile_job.py" in ps, (node, ps)
        assert JOB_SECRET not in ps and s3.secret not in ps, (node, ps)
    # the play's output at -vvv, the set_stats artifact among it
    assert "CUSTOM STATS" in text and "gpu_cluster_run" in text[text.index("CUSTOM STATS"):], text[-3000:]
    assert JOB_SECRET not in text and s3.secret not in text and s3.secret.encode().hex() not in text
    reports = node_events(cluster, "hostile-1", "hostile")
    assert sorted(r["node_rank"] for r in reports) == [0, 1], reports
    job_uid = int(sh(cluster["nodes"][0], "id -u aiinfra-job").stdout)
    admin_uid = int(sh(cluster["nodes"][0], "id -u gpuadmin").stdout)
    for report in reports:
        assert report["uid"] == job_uid and job_uid not in (0, admin_uid), report
        assert report["sudo_rc"] != 0, report
        assert report["secret_in_env"] is True, report  # the secret did reach the job
        assert report["found"] == {"job": [], "storage": []}, report  # and nothing else, anywhere it can read
        assert report["cmdlines"] == [] and report["foreign_environ_readable"] == [], report
        assert report["uploader_environ"] == "denied", report
        assert report["wrote"] == [] and report["created"] == [], report
    # the controller's run directory: the honest outputs came, the links did not, no secret, no root-only byte
    run_dir = cluster["tmp"] / "runs" / "hostile-1"
    for node in cluster["nodes"]:
        outputs = sorted(os.listdir(run_dir / node / "outputs"))
        assert outputs == ["real.txt"], outputs
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            data = (os.path.join(root, name), open(os.path.join(root, name), "rb").read())
            for needle in (JOB_SECRET, s3.secret, ROOT_BYTES):
                assert needle.encode() not in data[1], (data[0], needle)
    assert summary(cluster, "hostile-1")["status"] == "succeeded"
    # the node's run directory: root's, and what root writes or runs there is root's alone
    node0 = cluster["nodes"][0]
    perms = sh(node0, "cd %s/runs/hostile-1 && stat -c '%%n %%U %%a' . launch.sh poststop.sh job.env meta.json "
                      "exit.json ranks outputs" % BASE).stdout.split("\n")
    assert perms[:8] == [". root 755", "launch.sh root 700", "poststop.sh root 700", "job.env root 600",
                         "meta.json root 644", "exit.json root 644", "ranks aiinfra-job 755",
                         "outputs aiinfra-job 755"], perms
    assert JOB_SECRET in sh(node0, "cat %s/runs/hostile-1/job.env" % BASE).stdout  # where it was, root's only
    assert sh(node0, "ls /etc/aiinfra/torchrun/").stdout.split() == []  # the uploader's credentials are gone

    # which node planted which link: global rank 0's node linked its whole checkpoint directory, the other a
    # subdirectory the restore would write through (the ranks are given by the rendezvous, not by the inventory)
    ckpt_dir = "%s/jobs/hostile/checkpoints" % BASE
    whole, sub = planted_links(cluster, "hostile-1", "hostile")

    # the same job again, with its checkpoints: each node's restore refuses its links, nothing starts
    proc = train(cluster, "hostile-2", "hostile", ["--job", "hostile"],
                 torchrun_checkpoint_uri="s3://%s/%s" % (BUCKET, prefix))
    text2 = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "Nothing was started" in text2, proc.stdout[-4000:]
    assert "could not be restored on" in text2, proc.stdout[-4000:]
    assert refused(cluster, text2, whole, ckpt_dir), proc.stdout[-4000:]
    assert refused(cluster, text2, sub, ckpt_dir + "/sub"), proc.stdout[-4000:]
    # and without them: the launch refuses the linked checkpoint directory (root follows no link), naming it
    proc = train(cluster, "hostile-3", "hostile", ["--job", "hostile"])
    text3 = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "could not start on" in text3 and "Nothing is left running" in text3, \
        proc.stdout[-4000:]
    assert refused(cluster, text3, whole, ckpt_dir), proc.stdout[-4000:]
    no_units(cluster)

    # nothing outside the job's directories changed owner, mode or content
    for node in cluster["nodes"]:
        after = sh(node, SNAPSHOT).stdout
        changed = sorted(set(before[node].splitlines()) ^ set(after.splitlines()))
        assert changed == [], (node, changed[:20])
        for path, mode in VICTIMS.items():
            assert sh(node, "stat -c '%%U %%a' %s" % path).stdout.split() == ["root", mode.lstrip("0")], path
    # no root-only byte and no secret in the bucket
    for key, data in bucket(cluster, prefix).items():
        for needle in (ROOT_BYTES, JOB_SECRET, s3.secret):
            assert needle.encode() not in data, (key, needle)


# -- 4 ------------------------------------------------------------------------------------------------------------

PROBE = ("import socket, sys\n"
         "try:\n"
         "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close(); print('open')\n"
         "except OSError as exc:\n"
         "    print('closed', exc)\n")


def test_the_rendezvous_port_answers_only_the_cluster(cluster):
    node0, node1 = cluster["nodes"]
    address = podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node0).stdout.strip()
    image = podman("inspect", "-f", "{{.ImageName}}", node0).stdout.strip()
    assert "table inet aiinfra_torchrun" in sh(node0, "nft list ruleset").stdout
    # a listener on the rendezvous port, and one on a port outside the firewall's (the control)
    pids = sh(node0, "for p in 29400 8765; do nohup python3 -m http.server $p >/dev/null 2>&1 & echo $!; done; "
                     "sleep 1").stdout.split()
    assert len(pids) == 2
    try:
        net = "aiinfra-iso-out-%s" % unique_name("n")[-6:]
        podman("network", "create", "--label", "aiinfra-gpu-cluster=%s" % cluster["name"], net)
        cluster["nets"].append(net)

        def outside(port):
            return podman("run", "--rm", "--network", net, "--entrypoint", "python3", image, "-c", PROBE, address,
                          str(port), check=False).stdout.strip()

        assert outside(8765) == "open"  # the other network does reach the node
        assert outside(29400).startswith("closed")  # but not its rendezvous port
        inside = sh(node1, "python3 -c %s %s 29400" % (shlex.quote(PROBE), address)).stdout.strip()
        assert inside == "open"  # the cluster's nodes do
    finally:
        sh(node0, "kill %s" % " ".join(pids))


# -- 5 ------------------------------------------------------------------------------------------------------------

# The node's torch in a container (as tests/integration/test_train_site.py makes it: no registry here): an image of
# an empty root, with the node's /usr and the PyTorch virtualenv mounted read-only (torchrun_docker_mounts). /sbin
# is a directory of its own: `docker run --init` mounts its docker-init at /sbin/docker-init, which cannot be made
# inside the read-only /usr.
IMAGE_SCRIPT = r"""set -e
rm -rf /tmp/aiinfra-img && mkdir -p /tmp/aiinfra-img && cd /tmp/aiinfra-img
mkdir -p usr etc tmp proc sys dev opt/aiinfra var/lib/aiinfra root sbin
ln -s usr/bin bin && ln -s usr/lib lib && ln -s usr/lib64 lib64
cp /etc/passwd /etc/group etc/
tar -c . | docker import - aiinfra-host-torch:test >/dev/null
rm -rf /tmp/aiinfra-img
"""
READ_ONLY = {"/usr": "/usr", "/opt/aiinfra/pytorch": "/opt/aiinfra/pytorch"}
DOCKER = {"torchrun_docker_image": "aiinfra-host-torch:test",
          "torchrun_docker_torchrun": "/opt/aiinfra/pytorch/bin/torchrun",
          "torchrun_docker_mounts": ["%s:%s:ro" % item for item in sorted(READ_ONLY.items())]}


def test_in_docker_the_hostile_job_runs_as_the_job_user_and_reaches_only_its_directories(cluster):
    """The hostile job again, in Docker mode (the torchrun role's torchrun_docker_image), on the same nodes, which
    get Docker now (after the other tests: installing it changes /etc)."""
    s3, nodes = cluster["s3"], cluster["nodes"]
    run_playbook("tests/integration/playbooks/docker_nodes.yml", inventory=cluster["inventory"], timeout=900)
    for node in nodes:
        made = sh(node, IMAGE_SCRIPT)
        assert made.returncode == 0, made.stderr
    probe = sh(nodes[0], "docker run --rm -v /usr:/usr:ro aiinfra-host-torch:test /usr/bin/true")
    assert probe.returncode == 0, probe.stderr  # Docker does start containers on these nodes
    prefix, run_id, job = "hostile-docker", "hostile-d1", "hostiled"
    seed_sub_checkpoint(cluster, prefix)
    primed(cluster)
    before = dict((node, sh(node, SNAPSHOT).stdout) for node in nodes)
    extra = dict(DOCKER, torchrun_checkpoint_uri="s3://%s/%s" % (BUCKET, prefix),
                 torchrun_secret_env={"HF_TOKEN": JOB_SECRET, "LOOK_FOR_HEX": s3.secret.encode().hex()})
    args = settings(cluster, run_id, job, ["--job", job, "--linger", "10"], **extra)
    container = "aiinfra-torchrun-%s" % run_id

    def capture(node):
        return {"ps": sh(node, "ps -eo uid=,args=").stdout,
                "inspect": json.loads(sh(node, "docker inspect %s" % container).stdout or "[]")}

    rc, text, seen = watched_train(cluster, run_id, args, capture)
    assert rc == 0, text[-5000:]
    assert "torchrun run %s (job %s): SUCCEEDED" % (run_id, job) in text
    assert JOB_SECRET not in text and s3.secret not in text and s3.secret.encode().hex() not in text
    job_uid = int(sh(nodes[0], "id -u aiinfra-job").stdout)
    job_gid = int(sh(nodes[0], "id -g aiinfra-job").stdout)
    job_dirs = ["%s/jobs/%s" % (BASE, job), "%s/runs/%s/ranks" % (BASE, run_id), "%s/runs/%s/outputs" % (BASE, run_id)]
    for node, got in seen.items():
        # the job's processes (seen from the node) run as the job's uid, and no command line holds a secret
        ps = [line.split(None, 1) for line in got["ps"].splitlines() if line.strip()]
        job_procs = [(int(uid), args) for uid, args in ps if "hostile_job.py" in args and "docker run" not in args]
        assert job_procs and all(uid == job_uid for uid, _a in job_procs), (node, job_procs)
        assert JOB_SECRET not in got["ps"] and s3.secret not in got["ps"], (node, got["ps"])
        # the container: the job's user, not privileged, only the job's own directories writable
        assert len(got["inspect"]) == 1, (node, got["inspect"])
        info = got["inspect"][0]
        assert info["Config"]["User"] == "%d:%d" % (job_uid, job_gid), info["Config"]
        assert info["HostConfig"]["Privileged"] is False and not info["HostConfig"].get("CapAdd"), info["HostConfig"]
        mounts = sorted((m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"])
        assert mounts == sorted([(d, d, True) for d in job_dirs] + [(s, d, False) for s, d in READ_ONLY.items()]), \
            (node, mounts)
        # the secret came through --env-file (root's own file), not -e
        launch = sh(node, "cat %s/runs/%s/launch.sh" % (BASE, run_id)).stdout
        assert "docker run" in launch and "--env-file %s/runs/%s/job.env" % (BASE, run_id) in launch, launch
        assert JOB_SECRET not in launch and "--privileged" not in launch, launch
        assert "--user %d:%d" % (job_uid, job_gid) in launch, launch
        assert sh(node, "stat -c '%%U %%a' %s/runs/%s/job.env" % (BASE, run_id)).stdout.split() == ["root", "600"]
    reports = node_events(cluster, run_id, "hostile")
    assert sorted(r["node_rank"] for r in reports) == [0, 1], reports
    for report in reports:
        assert report["uid"] == job_uid and report["sudo_rc"] != 0 and report["secret_in_env"] is True, report
        assert report["found"] == {"job": [], "storage": []}, report
        assert report["cmdlines"] == [] and report["foreign_environ_readable"] == [], report
        assert report["uploader_environ"] in ("denied", "none"), report  # (not even in its PID namespace)
        assert report["wrote"] == [] and report["created"] == [], report
    run_dir = cluster["tmp"] / "runs" / run_id
    for node in nodes:
        assert sorted(os.listdir(run_dir / node / "outputs")) == ["real.txt"]
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            for needle in (JOB_SECRET, s3.secret, ROOT_BYTES):
                assert needle.encode() not in data, (os.path.join(root, name), needle)

    # the links its containers planted: the next launch (in Docker too) refuses them, nothing starts
    ckpt_dir = "%s/jobs/%s/checkpoints" % (BASE, job)
    whole, sub = planted_links(cluster, run_id, job)
    proc = train(cluster, "hostile-d2", job, ["--job", job], **dict(DOCKER, torchrun_checkpoint_uri="s3://%s/%s" % (
        BUCKET, prefix)))
    text2 = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "could not be restored on" in text2 and "Nothing was started" in text2, \
        proc.stdout[-4000:]
    assert refused(cluster, text2, whole, ckpt_dir) and refused(cluster, text2, sub, ckpt_dir + "/sub"), \
        proc.stdout[-4000:]
    no_units(cluster)
    for node in nodes:
        assert sh(node, "docker ps -aq --filter label=aiinfra-torchrun-run=%s" % run_id).stdout.strip() == ""
        changed = sorted(set(before[node].splitlines()) ^ set(sh(node, SNAPSHOT).stdout.splitlines()))
        assert changed == [], (node, changed[:20])
    for key, data in bucket(cluster, prefix).items():
        for needle in (ROOT_BYTES, JOB_SECRET, s3.secret):
            assert needle.encode() not in data, (key, needle)
