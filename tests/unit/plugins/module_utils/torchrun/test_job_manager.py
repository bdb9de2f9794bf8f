"""The node side's job manager (module_utils/torchrun/job.py): start, stop and collect a run against a temporary
base directory, with systemctl and systemd-run faked at the process boundary (the Node's ``run``), and root's
no-follow guarantees against links the job's user plants."""

from __future__ import annotations

import json
import os
import pwd
import stat

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import LaunchSpec, RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.job import JobError, JobManager, Node

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root's run directory and the job user's need root")

SECRET = "hf_job-manager-s3cr3t"
RUN_ID = "20260101-000000-abcdef"


class FakeSystemd(object):
    """systemctl and systemd-run as the job manager calls them: every call recorded, units' states kept."""

    def __init__(self):
        self.calls = []
        self.states = {}
        self.others = []  # other runs' units that are running
        self.fail_systemd_run = ""
        self.warnings = []

    def run(self, argv):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if argv[:2] == ["systemctl", "show"]:
            return 0, "ActiveState=%s\nSubState=x\n" % self.states.get(argv[2], "inactive"), ""
        if argv[:2] == ["systemctl", "list-units"]:
            return 0, "".join("%s loaded active running x\n" % u for u in self.others), ""
        if argv[:2] == ["systemctl", "stop"]:
            self.states[argv[2]] = "inactive"
            return 0, "", ""
        if argv[0] == "systemd-run":
            if self.fail_systemd_run:
                return 1, "", self.fail_systemd_run
            self.states[argv[argv.index("--unit") + 1]] = "active"
            return 0, "", ""
        return 0, "", ""

    def node(self, check_mode=False):
        return Node(self.run, lambda name: None, self.warnings.append, check_mode)

    def started(self):
        return [c for c in self.calls if c[0] == "systemd-run"]


@pytest.fixture
def nobody():
    return pwd.getpwnam("nobody")


@pytest.fixture
def setup(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    spec = LaunchSpec(job_name="demo", workdir=str(tmp_path / "work"), nnodes="2", node_rank=1,
                      rdzv_host="10.0.0.1", rdzv_port=29400, timeout=60, stop_timeout=5, user="nobody",
                      torchrun="/bin/sh", script=str(tmp_path / "work" / "train.py"), script_args=["--steps", "3"],
                      checkpoint_dir=str(tmp_path / "work" / "ckpt"), local_addr="aiinfra-rank-00001",
                      rank_hosts=[{"name": "a", "rank_host": "aiinfra-rank-00000", "address": "10.0.0.1"},
                                  {"name": "b", "rank_host": "aiinfra-rank-00001", "address": "10.0.0.2"}],
                      secret_env_names=["HF_TOKEN"]).to_dict()
    return {"base": str(tmp_path / "base"), "spec": spec, "hosts": str(hosts), "tmp": tmp_path}


def start(fake, setup, **kwargs):
    job = JobManager(fake.node(kwargs.pop("check_mode", False)), setup["base"], RUN_ID)
    args = dict(rdzv_id=RUN_ID + "-x", secret_env={"HF_TOKEN": SECRET}, script_content="print('train')\n",
                hosts_file=setup["hosts"])
    args.update(kwargs)
    return job, job.start(setup["spec"], **args)


def test_start_lays_out_the_run_and_starts_its_unit(setup, nobody):
    fake = FakeSystemd()
    job, result = start(fake, setup)
    run = RunDir(setup["base"], RUN_ID)
    assert result["action"] == "started" and result["changed"] and result["unit"] == run.unit
    assert result["log_path"] == run.log and result["output_dir"] == run.outputs
    [cmd] = fake.started()
    assert cmd[cmd.index("--unit") + 1] == run.unit and cmd[-2:] == ["/bin/sh", run.launch]
    assert "EnvironmentFile=%s" % run.secret_env in cmd
    # root's files, root's modes; the job's directories its user's
    for path, mode in ((run.launch, 0o700), (run.poststop, 0o700), (run.secret_env, 0o600), (run.meta, 0o644)):
        st = os.lstat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), path
    assert os.stat(run.path).st_uid == 0
    for path in (run.ranks, run.outputs, setup["spec"]["workdir"], setup["spec"]["checkpoint_dir"]):
        assert os.stat(path).st_uid == nobody.pw_uid, path
    assert os.stat(setup["spec"]["script"]).st_uid == nobody.pw_uid and result["script_changed"]
    # the secret only in the root-only file
    assert SECRET in open(run.secret_env).read()
    for text in (open(run.launch).read(), open(run.meta).read(), json.dumps(result), json.dumps(fake.calls)):
        assert SECRET not in text
    assert "--rdzv-id %s-x" % RUN_ID in result["command"] and "setpriv --reuid nobody" in open(run.launch).read()
    assert "aiinfra-rank-00000" in open(setup["hosts"]).read() and result["hosts_changed"]
    assert json.load(open(run.meta))["node_rank"] == 1


def test_a_running_run_is_attached_to_and_a_finished_one_reported_again(setup):
    fake = FakeSystemd()
    start(fake, setup)
    job, again = start(fake, setup)  # the unit is active now
    assert again["action"] == "attached" and len(fake.started()) == 1
    fake.states.clear()
    run = RunDir(setup["base"], RUN_ID)
    with open(run.exit, "w") as handle:
        json.dump({"result": "success", "code": "exited", "status": "0"}, handle)
    job, done = start(fake, setup)
    assert done["action"] == "finished" and len(fake.started()) == 1
    job, restarted = start(fake, setup, restart_finished=True)
    assert restarted["action"] == "started" and len(fake.started()) == 2
    assert not os.path.exists(run.exit)


def test_a_node_busy_with_another_run_is_refused_by_name(setup):
    fake = FakeSystemd()
    fake.others = ["aiinfra-torchrun-other-run.service"]
    with pytest.raises(JobError, match="already running another torchrun job: aiinfra-torchrun-other-run.service"):
        start(fake, setup)
    assert fake.started() == []


def test_systemd_run_failing_is_not_a_start(setup):
    fake = FakeSystemd()
    fake.fail_systemd_run = "Unit already exists"
    with pytest.raises(JobError, match="systemd-run failed: Unit already exists") as err:
        start(fake, setup)
    assert "action" not in err.value.result and SECRET not in repr(err.value.result)


def test_check_mode_writes_and_starts_nothing(setup):
    fake = FakeSystemd()
    job, result = start(fake, setup, check_mode=True)
    assert result["action"] == "check" and fake.started() == []
    assert not os.path.exists(setup["base"]) and not os.path.exists(setup["spec"]["workdir"])
    assert "aiinfra-rank" not in open(setup["hosts"]).read()


def test_a_spec_that_is_not_a_launch_spec_is_refused(setup):
    fake = FakeSystemd()
    with pytest.raises(JobError, match="unknown fields: extra"):
        JobManager(fake.node(), setup["base"], RUN_ID).start(dict(setup["spec"], extra=1))
    with pytest.raises(JobError, match="lacks rdzv_host"):
        JobManager(fake.node(), setup["base"], RUN_ID).start(dict(setup["spec"], rdzv_host=""))


def test_stop_and_collect(setup):
    fake = FakeSystemd()
    job, result = start(fake, setup)
    run = RunDir(setup["base"], RUN_ID)
    collected = job.collect()
    assert collected["active"] and collected["meta"]["run_id"] == RUN_ID and collected["exit"] is None
    assert collected["outputs_archive"] == run.outputs_archive
    stopped = job.stop()
    assert stopped["action"] == "stopped" and ["systemctl", "stop", run.unit] in fake.calls
    assert job.stop()["action"] == "absent"
    with open(run.exit, "w") as handle:
        json.dump({"result": "success", "code": "exited", "status": "0"}, handle)
    collected = job.collect()
    assert not collected["active"] and collected["exit"]["status"] == "0"


def test_root_never_follows_a_link_the_job_planted(setup, nobody):
    fake = FakeSystemd()
    start(fake, setup)  # the job's directories exist, its user's
    target = setup["tmp"] / "roots-file"
    target.write_text("root's\n")
    script = setup["spec"]["script"]
    os.unlink(script)
    os.symlink(str(target), script)
    os.lchown(script, nobody.pw_uid, nobody.pw_gid)
    fake.states.clear()
    start(fake, setup, restart_finished=True)
    assert target.read_text() == "root's\n" and os.stat(str(target)).st_uid == 0
    assert not os.path.islink(script) and open(script).read() == "print('train')\n"
    # a checkpoint directory the job replaced by a link to a root-owned directory: refused, not given away
    roots = setup["tmp"] / "roots-dir"
    roots.mkdir()
    ckpt = setup["spec"]["checkpoint_dir"]
    os.rmdir(ckpt)
    os.symlink(str(roots), ckpt)
    os.lchown(ckpt, nobody.pw_uid, nobody.pw_gid)
    fake.states.clear()
    with pytest.raises(JobError, match="cannot prepare the run on this node"):
        start(fake, setup, restart_finished=True)
    assert os.stat(str(roots)).st_uid == 0
