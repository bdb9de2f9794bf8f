# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Slurm launcher of a torchrun run (``torchrun_launcher: slurm``), both sides of it.

The node side (``torchrun_job`` with a spec whose ``launcher`` is ``slurm``): :func:`prepare` lays the run out on the
node exactly as the direct launch does (run directory, the node's command built by ``command.build_command`` from the
same spec, the same log, exit and launch records), but starts nothing: it writes the srun step's program
(:data:`STEP_PROGRAM`) and this node's step file. The Slurm job (one ``sbatch`` of every node, ``srun`` one task a
node, as the job's user) runs that program on each node, which runs the node's command and keeps the records the
direct launch's systemd unit keeps (``meta.json`` when it starts, ``exit.json`` as systemd words it, the log), so the
watch, the collect and the report read the run the same way. The records the step writes are files root makes in
root's run directory and gives to the job's user (nothing there can be replaced by a link); the secret environment
is a file only that user reads (0600), never in the batch script or the job's record in Slurm.

The controller side (``torchrun_slurm``, run on the node of rank 0): :class:`Slurm` submits, follows, cancels and
reports the job through ``sbatch``, ``squeue``, ``scancel`` and ``sacct``.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import time

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import nofollow

LAUNCHERS = ("direct", "slurm")
STEP_NAME = "slurm_step.py"
STEP_CONFIG = "slurm_step.json"
STEP_PID = "slurm_step.pid"
SECRET_JSON = "job.env.json"
STEP_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# squeue's states of a job that has not ended
QUEUED = ("PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED")
RUNNING = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING")

# The srun step on each node (as the job's user): run the node's command as the direct launch's unit runs it (its
# working directory, its environment, output appended to the run's log, RuntimeMaxSec), record it like the unit does
# (meta.json at the start; exit.json as systemd's SERVICE_RESULT/EXIT_CODE/EXIT_STATUS words it), and stop every
# process of it when Slurm stops the step (scancel: SIGTERM, then SIGKILL after the stop timeout).
STEP_PROGRAM = r'''# aiinfra.gpu_cluster torchrun: the srun step of a run under Slurm (generated; edits are overwritten)
import json, os, signal, subprocess, sys, time

with open(sys.argv[1]) as handle:
    cfg = json.load(handle)
SIGNALS = dict((getattr(signal, n), n[3:]) for n in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM", "SIGABRT",
                                                     "SIGSEGV", "SIGPIPE", "SIGUSR1", "SIGUSR2"))


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


write(cfg["pid"], "%d\n" % os.getpid())
env = dict(cfg["env"])
env["SLURM_JOB_ID"] = os.environ.get("SLURM_JOB_ID", "")
try:
    with open(cfg["secret_env"]) as handle:
        env.update(json.load(handle))
except (IOError, OSError, ValueError):
    pass
meta = dict(cfg["meta"], started_at=time.time(), slurm_job_id=env["SLURM_JOB_ID"])
write(cfg["meta_path"], json.dumps(meta))
state = {"signal": None, "timeout": False}
log = open(cfg["log"], "ab")
try:
    child = subprocess.Popen(cfg["argv"], cwd=cfg["workdir"], env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
except OSError as exc:
    log.write(("cannot start %s: %s\n" % (cfg["argv"][0], exc)).encode())
    log.close()
    write(cfg["exit"], json.dumps({"result": "exit-code", "code": "exited", "status": "127", "time": time.time()}))
    sys.exit(127)


def stop(signum=None, frame=None):
    if signum is not None:
        state["signal"] = signum
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except OSError:
        pass
    state.setdefault("kill_at", time.time() + float(cfg["stop_timeout"]))


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(signum, stop)
deadline = time.time() + float(cfg["timeout"]) if float(cfg["timeout"]) > 0 else None
while child.poll() is None:
    now = time.time()
    if deadline is not None and now > deadline and not state["timeout"]:
        state["timeout"] = True
        stop()
    if "kill_at" in state and now > state["kill_at"]:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
rc = child.returncode
try:
    os.killpg(child.pid, signal.SIGKILL)  # what is left of its process group (KillMode=control-group)
except OSError:
    pass
log.close()
if state["timeout"]:
    record = {"result": "timeout", "code": "killed", "status": "TERM"}
elif state["signal"] is not None or rc < 0:
    record = {"result": "signal", "code": "killed", "status": SIGNALS.get(state["signal"] or -rc, str(-rc))}
elif rc == 0:
    record = {"result": "success", "code": "exited", "status": "0"}
else:
    record = {"result": "exit-code", "code": "exited", "status": str(rc)}
record["time"] = time.time()
write(cfg["exit"], json.dumps(record))
sys.exit(0 if rc == 0 and not state["timeout"] else 1)
'''


class SlurmError(Exception):
    """A Slurm command that failed; the message says which and why."""


def check_launcher(settings):
    """What is wrong with the launcher settings (``launcher``, and what the Slurm launcher cannot do yet)."""
    launcher = str(settings.get("launcher") or "direct")
    if launcher not in LAUNCHERS:
        return ["torchrun_launcher must be %s (got %r)" % (" or ".join(LAUNCHERS), settings.get("launcher"))]
    errors = []
    if launcher == "slurm":
        if settings.get("docker_image"):
            errors.append("torchrun_launcher=slurm does not run torchrun_docker_image jobs yet (use the direct "
                          "launcher)")
        if settings.get("checkpoint_uri"):
            errors.append("torchrun_launcher=slurm does not upload checkpoints (torchrun_checkpoint_uri) yet: the "
                          "uploader is bound to the direct launch's unit (use the direct launcher)")
        if str(settings.get("framework") or "pytorch").strip().lower() not in ("", "pytorch"):
            errors.append("torchrun_launcher=slurm runs PyTorch jobs only for now (torchrun_framework %s: use the "
                          "direct launcher)" % settings.get("framework"))
    return errors


def step_paths(run):
    """The Slurm step's files in a run directory (a RunDir)."""
    return {"program": os.path.join(run.path, STEP_NAME), "config": os.path.join(run.path, STEP_CONFIG),
            "pid": os.path.join(run.path, STEP_PID), "secret_env": os.path.join(run.path, SECRET_JSON)}


def step_config(spec, built, run, run_id):
    """This node's step file: what the step runs (the node's built command), where it records what it does."""
    paths = step_paths(run)
    env = {"PATH": STEP_PATH}
    if spec.get("user"):
        env.update(HOME=spec.get("home") or spec["workdir"], USER=spec["user"], LOGNAME=spec["user"])
    env.update(built["env"])
    return {"argv": list(built["argv"]), "env": env, "workdir": spec["workdir"], "log": run.log, "exit": run.exit,
            "meta_path": run.meta, "pid": paths["pid"], "secret_env": paths["secret_env"],
            "timeout": int(spec.get("timeout") or 0), "stop_timeout": int(spec.get("stop_timeout") or 30),
            "meta": {"run_id": run_id, "job_name": spec["job_name"], "node_rank": spec["node_rank"],
                     "user": spec["user"], "command": built["command"], "nproc_per_node": built["nproc_per_node"],
                     "launcher": "slurm"}}


def prepare(job, spec, owner, built, secret_env, restart_finished=False):
    """The run on this node, ready for the Slurm step (nothing started). ``job``: the JobManager. Returns
    ``action`` (prepared, or finished when it ran to its end before and ``restart_finished`` is false)."""
    run = job.run_dir
    if not restart_finished and (nofollow.size(run.exit) or 0) > 0:
        return "finished"
    if job.node.check_mode:
        return "check"
    root = pwd.getpwuid(0)
    for path in (spec["workdir"], spec.get("checkpoint_dir")):
        if path:
            nofollow.make_dir(path, owner)
    nofollow.make_dir(run.path, root)
    for path in run.job_dirs():
        nofollow.make_dir(path, owner)
    job.rotate_log()
    paths = step_paths(run)
    # root's: what runs and what it runs (no secret in either)
    nofollow.write_file(paths["program"], STEP_PROGRAM, 0o644, root)
    nofollow.write_file(paths["config"], json.dumps(step_config(spec, built, run, job.run_id),
                                                    indent=1, sort_keys=True), 0o644, root)
    # the job's: the records the step keeps (made empty here, in root's directory), its secret environment (0600)
    for path in (run.log, run.exit, run.meta, paths["pid"]):
        nofollow.unlink(path)
        nofollow.write_file(path, "", 0o644, owner)
    nofollow.unlink(run.secret_env)
    nofollow.write_file(paths["secret_env"], json.dumps(secret_env or {}), 0o600, owner)
    return "prepared"


# -- the controller side --------------------------------------------------------------------------------------------
def batch_script(run_dir, nnodes):
    """The batch script: one srun task on every node of the allocation, each the node's own step (its step file is
    at the same path on every node). No secret and no environment of the job is in it."""
    program = os.path.join(run_dir, STEP_NAME)
    config = os.path.join(run_dir, STEP_CONFIG)
    return "\n".join([
        "#!/bin/sh",
        "# aiinfra.gpu_cluster torchrun (torchrun_launcher=slurm): one step, every node",
        "PATH=%s; export PATH" % STEP_PATH,
        'py=$(command -v python3) || { echo "python3 is not on this node" >&2; exit 1; }',
        'exec srun --nodes=%d --ntasks-per-node=1 --kill-on-bad-exit=0 "$py" %s %s'
        % (int(nnodes), shlex.quote(program), shlex.quote(config)), ""])


def sbatch_argv(run_id, user, hosts, output, chdir, time_limit_s=0, account=""):
    """``sbatch`` of the run as its user: N whole nodes (the plan's, by name), one task each, the job named after
    the run id; the batch script comes on stdin."""
    argv = ["runuser", "-u", user, "--", "sbatch", "--parsable", "--job-name=%s" % run_id,
            "--nodes=%d" % len(hosts), "--ntasks-per-node=1", "--exclusive", "--mem=0",
            "--nodelist=%s" % ",".join(hosts), "--output=%s" % output, "--chdir=%s" % chdir, "--export=NONE"]
    if time_limit_s and int(time_limit_s) > 0:
        argv.append("--time=%d" % max(1, (int(time_limit_s) + 119) // 60))
    if account:
        argv.append("--account=%s" % account)
    return argv


def parse_queue(text):
    """``squeue -h -o '%i|%T|%j|%u|%r'`` lines: dicts of id, state, name, user, reason."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5 and parts[0].strip():
            out.append({"id": parts[0].strip(), "state": parts[1].strip(), "name": parts[2].strip(),
                        "user": parts[3].strip(), "reason": parts[4].strip()})
    return out


def job_number(job_id):
    try:
        return int(str(job_id).split("_", 1)[0].split("+", 1)[0])
    except ValueError:
        return 0


def ahead_of(queue, job_id):
    """The jobs in the queue ahead of ``job_id``: every running one, and the pending ones submitted before it."""
    mine = job_number(job_id)
    return [j["id"] for j in queue if j["id"] != str(job_id)
            and (j["state"] in RUNNING or (j["state"] in QUEUED and job_number(j["id"]) < mine))]


def pending_message(run_id, job_id, reason, ahead):
    why = " (%s)" % reason if reason and reason != "None" else ""
    if not ahead:
        return "run %s: Slurm job %s is in the Slurm queue, no job ahead of it%s" % (run_id, job_id, why)
    return "run %s: Slurm job %s is waiting in the Slurm queue behind job%s %s%s" % (
        run_id, job_id, "s" if len(ahead) > 1 else "", ", ".join(ahead), why)


def wait_message(run_id, job_id, state, waited, ahead, timeout):
    """What the play shows after the wait in the queue (torchrun_slurm state=running, and its action, which waits
    in slices): running (how long it waited, behind which jobs), still waiting after ``timeout``, or ended."""
    if state == "RUNNING":
        return "run %s: Slurm job %s is running%s" % (
            run_id, job_id, (" (it waited %.0f s in the Slurm queue behind job%s %s)"
                             % (waited, "s" if len(ahead) > 1 else "", ", ".join(ahead))) if ahead else "")
    if state in QUEUED:
        return ("run %s: Slurm job %s still waits in the Slurm queue after %d s (torchrun_slurm_queue_timeout)"
                % (run_id, job_id, timeout))
    return "run %s: Slurm job %s ended %s before it ran" % (run_id, job_id, state)


def parse_sacct(text):
    """``sacct -n -X -P -o JobID,JobName,User,State,Elapsed,NodeList,ExitCode,Start,End`` lines."""
    names = ("id", "name", "user", "state", "elapsed", "nodelist", "exit_code", "start", "end")
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= len(names):
            out.append(dict(zip(names, (p.strip() for p in parts))))
    return out


class Slurm(object):
    """The Slurm commands, through ``run(argv, data=None) -> (rc, out, err)`` (the module's run_command)."""

    def __init__(self, run, sleep=time.sleep, clock=time.time):
        self.run = run
        self.sleep = sleep
        self.clock = clock

    def _call(self, argv, data=None):
        if data is None:
            rc, out, err = self.run(argv)
        else:
            rc, out, err = self.run(argv, data=data)
        if rc != 0:
            what = " ".join(argv[4:5] if argv[0] == "runuser" else argv[:2])
            raise SlurmError("%s failed (rc %s): %s" % (what, rc, (err or out).strip()))
        return out

    def ping(self):
        """Whether slurmctld answers (``scontrol ping``); the message when it does not."""
        rc, out, err = self.run(["scontrol", "ping"])
        text = (out + err).strip()
        if rc != 0 or "UP" not in text:
            return False, text or "scontrol ping rc %s" % rc
        return True, text

    def queue(self):
        return parse_queue(self._call(["squeue", "-h", "-t", "all", "-o", "%i|%T|%j|%u|%r"]))

    def find(self, run_id):
        """The job of this run still in the queue (pending or running), if any."""
        for job in self.queue():
            if job["name"] == run_id and (job["state"] in QUEUED or job["state"] in RUNNING):
                return job
        return None

    def submit(self, argv, script):
        out = self._call(argv, data=script).strip()
        job_id = out.split(";")[0].strip()
        if not job_id.isdigit():
            raise SlurmError("sbatch did not give a job id: %r" % out)
        return job_id

    def state(self, job_id):
        """The job's state and reason: squeue's while it is in the queue, else sacct's."""
        for job in self.queue():
            if job["id"] == str(job_id):
                return job["state"], job["reason"]
        records = self.accounting(job_id)
        if records:
            return records[0]["state"].split()[0], ""
        return "UNKNOWN", ""

    def wait_running(self, job_id, timeout, interval=2.0):
        """Wait until the job runs. Returns ``(state, ahead)``: RUNNING (or the state it ended in without
        running), and every job seen ahead of it while it waited."""
        deadline = self.clock() + float(timeout) if float(timeout) > 0 else None
        ahead = []
        while True:
            queue = self.queue()
            mine = [j for j in queue if j["id"] == str(job_id)]
            if mine and mine[0]["state"] in RUNNING:
                return "RUNNING", ahead
            if mine and mine[0]["state"] in QUEUED:
                for other in ahead_of(queue, job_id):
                    if other not in ahead:
                        ahead.append(other)
            else:
                state, dummy = self.state(job_id)
                return state, ahead
            if deadline is not None and self.clock() > deadline:
                return "PENDING", ahead
            self.sleep(interval)

    def cancel(self, job_id):
        rc, out, err = self.run(["scancel", str(job_id)])
        return rc == 0, (err or out).strip()

    def accounting(self, job_id):
        return parse_sacct(self._call(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o",
                                       "JobID,JobName,User,State,Elapsed,NodeList,ExitCode,Start,End"]))
