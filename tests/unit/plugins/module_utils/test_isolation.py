"""The job is untrusted code (issue 17): root never follows its links (module_utils/nofollow), secrets have their
own way in (torchrun_secret_env), the uploader is not the job, checkpoints never go backwards and are restored
only when complete, and every validator matches whole."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pwd
import shlex
import stat

import boto3
import pytest
from moto import mock_aws

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import nofollow
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import torchrun as tr
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base as cloud_base
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import plan as tplan

PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._storage."
SECRET = "hf_s3cr3t-value-never-shown"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="root's operations on a user's directory need root")


def storage(name):
    return importlib.import_module(PACKAGE + name)


@pytest.fixture
def nobody():
    return pwd.getpwnam("nobody")


def job_dir(tmp_path, nobody):
    """A directory the 'job' (nobody) owns, inside a root-only tree."""
    os.chmod(tmp_path, 0o755)
    top = tmp_path / "job"
    top.mkdir()
    os.chown(top, nobody.pw_uid, nobody.pw_gid)
    return top


def plant(link, target, owner):
    os.symlink(str(target), str(link))
    os.lchown(str(link), owner.pw_uid, owner.pw_gid)


# -- root never follows the job's links ----------------------------------------------------------------------

@root_only
def test_make_dir_refuses_a_link_the_job_planted_and_changes_nothing_behind_it(tmp_path, nobody):
    top = job_dir(tmp_path, nobody)
    secret_dir = tmp_path / "rootonly"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "f").write_text("root's")
    plant(top / "checkpoints", secret_dir, nobody)
    with pytest.raises(nofollow.UnsafePath, match="symbolic link"):
        nofollow.make_dir(str(top / "checkpoints"), nobody)
    with pytest.raises(nofollow.UnsafePath):
        nofollow.make_dir(str(top / "checkpoints" / "sub"), nobody)
    st = os.stat(secret_dir)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700) and not (secret_dir / "sub").exists()
    # the old code's chown of a restored tree: a link is given away itself, never its target
    (top / "real").mkdir()
    plant(top / "real" / "x", secret_dir / "f", nobody)
    os.symlink(str(secret_dir / "f"), str(top / "real" / "y"))  # root's link in the job's directory
    nofollow.chown_tree(str(top), nobody)
    assert os.stat(secret_dir / "f").st_uid == 0 and os.lstat(top / "real" / "y").st_uid == nobody.pw_uid


def test_a_link_only_root_could_have_made_is_followed(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    os.chmod(tmp_path, 0o755)
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "alias"))  # root's link in root's directory (like /var/run -> /run)
    nofollow.make_dir(str(tmp_path / "alias" / "d"))
    assert (real / "d").is_dir()


@root_only
def test_write_file_replaces_a_planted_link_instead_of_writing_through_it(tmp_path, nobody):
    top = job_dir(tmp_path, nobody)
    target = tmp_path / "shadow"
    target.write_text("root's own")
    for name in ("train.py", "train.py.tmp", "meta.json.tmp"):
        plant(top / name, target, nobody)
    nofollow.write_file(str(top / "train.py"), "print('hi')\n", 0o644, nobody)
    assert target.read_text() == "root's own" and os.stat(target).st_uid == 0
    assert not os.path.islink(top / "train.py") and (top / "train.py").read_text() == "print('hi')\n"
    assert os.stat(top / "train.py").st_uid == nobody.pw_uid
    assert nofollow.read_file(str(top / "train.py.tmp")) is None  # a link is not read through either
    nofollow.unlink(str(top / "meta.json.tmp"))
    assert target.exists() and not os.path.lexists(top / "meta.json.tmp")


@root_only
def test_run_as_runs_with_the_users_ids_only(tmp_path, nobody):
    secret = tmp_path / "secret"
    secret.write_text("x")
    os.chmod(secret, 0o600)

    def probe(path):
        try:
            open(path).read()
            readable = True
        except PermissionError:
            readable = False
        return [os.getuid(), os.geteuid(), os.getgid(), readable]

    assert nofollow.run_as("nobody", probe, str(secret)) == [nobody.pw_uid, nobody.pw_uid, nobody.pw_gid, False]
    with pytest.raises(nofollow.RunAsError, match="boom"):
        nofollow.run_as("nobody", lambda: (_never for _never in ()).throw(ValueError("boom")))


# -- object sync: links, rollbacks, completeness ------------------------------------------------------------

@pytest.fixture
def s3(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        yield client


def store():
    return storage("base").open_store("s3://data/ck", {})[0]


def keys(client):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="data", Prefix="ck/").get("Contents", []))


def body(client, key):
    return client.get_object(Bucket="data", Key=key)["Body"].read()


def write_complete(directory, name, data):
    """The completeness rule as the examples follow it."""
    path = os.path.join(str(directory), name)
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)
    with open(path + ".sha256.tmp", "w") as handle:
        handle.write("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name))
    os.replace(path + ".sha256.tmp", path + ".sha256")


def test_push_never_follows_a_link_out_of_the_tree(s3, tmp_path):
    sync = storage("sync")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root-only bytes")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    os.symlink(str(outside / "secret"), str(src / "x"))
    os.symlink(str(outside), str(src / "linked-dir"))
    res = sync.push(store(), str(src), "ck/")
    assert res["transferred"] == ["ck/ok.txt"] and keys(s3) == ["ck/ok.txt"]


def test_pull_never_writes_through_a_linked_subdirectory(s3, tmp_path):
    sync = storage("sync")
    s3.put_object(Bucket="data", Key="ck/sub/a.pt", Body=b"a",
                  Metadata={"sha256": hashlib.sha256(b"a").hexdigest()})
    victim = tmp_path / "victim"
    victim.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(victim), str(dest / "sub"))
    res = sync.pull(store(), "ck/", str(dest))
    assert os.listdir(victim) == [] and res["transferred"] == []
    assert "symbolic link" in res["failed"][0]["error"]


def test_a_node_never_pushes_back_what_it_restored_so_the_bucket_keeps_the_newest(s3, tmp_path):
    """Two nodes restore last.ckpt (step 100); node A writes step 200; node B, stale, pushes at the end."""
    sync = storage("sync")
    seed = tmp_path / "seed"
    seed.mkdir()
    write_complete(seed, "last.ckpt", b"step100")
    sync.push(store(), str(seed), "ck/")
    nodes = {}
    for name in ("a", "b"):
        d = tmp_path / name
        res = sync.pull(store(), "ck/", str(d), complete_only=True)
        assert sorted(res["transferred"]) == ["last.ckpt", "last.ckpt.sha256"]
        manifest = str(tmp_path / ("%s-push.json" % name))
        assert sync.seed_push_manifest(str(d), "ck/", str(d / sync.MANIFEST), manifest) == 2
        nodes[name] = (d, manifest)
    write_complete(nodes["a"][0], "last.ckpt", b"step200")
    res_a = sync.push(store(), str(nodes["a"][0]), "ck/", manifest_path=nodes["a"][1])
    assert sorted(res_a["transferred"]) == ["ck/last.ckpt", "ck/last.ckpt.sha256"]
    res_b = sync.push(store(), str(nodes["b"][0]), "ck/", manifest_path=nodes["b"][1])
    assert res_b["transferred"] == []  # what it restored is not sent back
    assert body(s3, "ck/last.ckpt") == b"step200"
    # a resumed run re-uploads nothing it restored
    again = tmp_path / "again"
    sync.pull(store(), "ck/", str(again), complete_only=True)
    manifest = str(tmp_path / "again-push.json")
    sync.seed_push_manifest(str(again), "ck/", str(again / sync.MANIFEST), manifest)
    assert sync.push(store(), str(again), "ck/", manifest_path=manifest)["transferred"] == []


def test_restore_takes_only_complete_files_and_names_the_others(s3, tmp_path):
    sync = storage("sync")
    src = tmp_path / "src"
    src.mkdir()
    write_complete(src, "good.pt", b"good")
    (src / "nomarker.pt").write_bytes(b"written in place, no marker")
    write_complete(src, "torn.pt", b"whole")
    (src / "torn.pt").write_bytes(b"who")  # killed while rewriting it in place: its marker says otherwise
    res = sync.push(store(), str(src), "ck/")
    # the torn file is held back (its marker vouches for other bytes); its marker alone is no checkpoint
    assert "ck/torn.pt" not in res["transferred"] and "ck/good.pt.sha256" in res["transferred"]
    assert "ck/torn.pt.sha256" not in res["transferred"]  # a marker waits for its file
    # what a killed job's final push used to send: the torn bytes beside the marker of the whole ones
    s3.put_object(Bucket="data", Key="ck/torn.pt", Body=b"who", Metadata={"sha256": hashlib.sha256(b"who").hexdigest()})
    marker = ("%s  torn.pt\n" % hashlib.sha256(b"whole").hexdigest()).encode()
    s3.put_object(Bucket="data", Key="ck/torn.pt.sha256", Body=marker,
                  Metadata={"sha256": hashlib.sha256(marker).hexdigest()})
    dest = tmp_path / "dest"
    res = sync.pull(store(), "ck/", str(dest), complete_only=True)
    assert sorted(res["transferred"]) == ["good.pt", "good.pt.sha256"]
    skipped = dict((c["path"], c["reason"]) for c in res["corrupt"])
    assert sorted(skipped) == ["nomarker.pt", "torn.pt", "torn.pt.sha256"]
    assert skipped["nomarker.pt"].startswith("incomplete: no valid nomarker.pt.sha256 marker")
    assert skipped["torn.pt"].startswith("incomplete: its sha256")
    assert skipped["torn.pt.sha256"] == "incomplete: the file it vouches for was not restored"
    assert sorted(os.listdir(dest)) == sorted(["good.pt", "good.pt.sha256", sync.MANIFEST])


def test_pushes_skip_temporary_names(s3, tmp_path):
    sync = storage("sync")
    (tmp_path / "a.pt.tmp").write_bytes(b"half")
    assert sync.push(store(), str(tmp_path), "ck/")["transferred"] == []


# -- secrets ---------------------------------------------------------------------------------------------------

def spec(**kw):
    base = {
        "run_id": "r1", "job_name": "example", "workdir": "/w/jobs/example", "checkpoint_dir": "/w/jobs/example/ck",
        "torchrun": "/opt/aiinfra/pytorch/bin/torchrun", "script": "/w/jobs/example/train.py", "script_args": [],
        "nnodes": "2", "node_rank": 0, "nproc_per_node": 1, "cpu_nproc_per_node": 1, "rdzv_host": "10.0.0.2",
        "rdzv_port": 29400, "rdzv_is_host": True, "max_restarts": 0, "log_dir": "/w/runs/r1/ranks",
        "output_dir": "/w/runs/r1/outputs", "env": {"OMP_NUM_THREADS": "2"}, "user": "aiinfra-job", "uid": 998,
        "gid": 997, "home": "/w/home/aiinfra-job", "secret_env_names": ["HF_TOKEN"],
    }
    base.update(kw)
    return base


def test_the_launch_script_drops_to_the_job_user_and_holds_no_secret():
    s = spec()
    built = tr.build_command(s)
    script = tr.launch_script(s, built)
    assert SECRET not in script and "HF_TOKEN" not in script
    last = shlex.split(script.splitlines()[-1])
    assert last[:9] == ["exec", "setpriv", "--reuid", "aiinfra-job", "--regid", "997", "--init-groups",
                        "--no-new-privs", "--"]
    assert last[9:] == built["argv"] and "export HOME=/w/home/aiinfra-job" in script


def test_docker_mode_runs_as_the_job_uid_with_the_secrets_in_an_env_file():
    docker = {"image": "img", "gpus": "none", "mounts": [], "args": [], "torchrun": "torchrun",
              "name": "aiinfra-torchrun-r1"}
    s = spec(docker=docker, secret_env_file="/w/runs/r1/job.env", node_run_dir="/w/runs/r1")
    argv = tr.build_command(s)["argv"]
    assert argv[argv.index("--user") + 1] == "998:997" and "--privileged" not in argv
    assert argv[argv.index("--env-file") + 1] == "/w/runs/r1/job.env"
    mounts = [argv[i + 1].split(":")[0] for i, a in enumerate(argv) if a == "-v"]
    assert mounts == ["/w/jobs/example", "/w/runs/r1/ranks", "/w/runs/r1/outputs"]  # never root's run dir
    assert not [a for a in argv if SECRET in a]
    script = tr.launch_script(s, tr.build_command(s))
    assert "setpriv" not in script and "--user 998:997" in script


@pytest.mark.parametrize("docker", [False, True])
def test_env_files(docker):
    text = tr.env_file_text({"HF_TOKEN": 'a"b$c\\d`e', "B": "x y"}, docker=docker)
    if docker:
        assert text == 'B=x y\nHF_TOKEN=a"b$c\\d`e\n'
    else:
        assert text == 'B="x y"\nHF_TOKEN="a\\"b\\$c\\\\d\\`e"\n'
    with pytest.raises(tr.SpecError) as err:
        tr.env_file_text({"HF_TOKEN": SECRET + "\nEVIL=1"}, docker=docker)
    assert SECRET not in str(err.value) and "HF_TOKEN" in str(err.value)


SETTINGS = {"job_name": "example", "workdir": "/w/jobs/example", "script": "train.py", "module": "",
            "script_args": [], "nproc_per_node": "auto", "cpu_nproc_per_node": 1, "rdzv_port": 29400,
            "rdzv_timeout": 60, "timeout": 600, "max_restarts": 0, "stop_timeout": 10, "docker_args": [],
            "docker_mounts": [], "env": {}, "state": "started"}
NODES = [{"host": "n0", "rank": 0, "address": "10.0.0.2"}, {"host": "n1", "rank": 1, "address": "10.0.0.3"}]


def test_the_plan_keeps_secret_names_only_and_the_default_user_is_not_the_admin():
    out = tplan.plan(NODES, dict(SETTINGS, secret_env={"HF_TOKEN": SECRET}))
    assert SECRET not in json.dumps(out)
    spec0 = out["specs"]["n0"]
    assert spec0["secret_env_names"] == ["HF_TOKEN"] and spec0["user"] == "aiinfra-job"


# -- bad input: each a row ------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("secret-looking-env-name", {"env": {"HF_TOKEN": SECRET}}, "torchrun_env: HF_TOKEN looks like a secret"),
    ("secret-looking-env-names", {"env": {"WANDB_API_KEY": "x", "DB_PASSWORD": "y", "MY_SECRET_THING": "z"}},
     "torchrun_env: DB_PASSWORD, MY_SECRET_THING, WANDB_API_KEY look like secrets"),
    ("job-name-newline", {"job_name": "exp\n"}, "torchrun_job_name must be 1-64"),
    ("run-id-newline", {"run_id": "r1\n"}, "torchrun_run_id must be 1-64"),
    ("user-newline", {"user": "gpuadmin\n"}, "torchrun_user must be a user name"),
    ("secret-env-bad-name", {"secret_env": {"NOT-A-NAME": SECRET}}, "torchrun_secret_env: 'NOT-A-NAME' is not"),
    ("comm-ports", {"comm_ports": "1-2; drop"}, "torchrun_comm_ports must be ports and ranges"),
]


@pytest.mark.parametrize("extra, message", [c[1:] for c in BAD_SETTINGS], ids=[c[0] for c in BAD_SETTINGS])
def test_bad_settings_fail_the_plan(extra, message):
    with pytest.raises(tr.SpecError) as err:
        tplan.plan(NODES, dict(SETTINGS, **extra))
    assert message in str(err.value)
    assert SECRET not in str(err.value)
    if "env" in extra:
        assert "torchrun_secret_env" in str(err.value)


BAD_VALUES = [
    ("cluster-id", cloud_base.validate_cluster_id, "exp\n"),
    ("run-id", tr.validate_run_id, "r1\n"),
    ("ssh-user", cloud_base.validate_ssh_user, "gpuadmin\n"),
    ("job-name", tr.validate_job_name, "exp\nrm -rf /"),
    ("job-user", tr.validate_user, "aiinfra-job\n"),
]


@pytest.mark.parametrize("check, value", [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_validators_match_whole_values(check, value):
    with pytest.raises(Exception):
        check(value)
    check(value.split("\n")[0])  # the same without the newline is fine
