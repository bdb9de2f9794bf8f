"""The rounds around a launch (plugin_utils/torchrun/rounds.py), their sh run for real here: the readiness check
names exactly what a node lacks, the collection brings the whole log (bytes as written) and says whether the job
left outputs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import rounds


def sh(script):
    return subprocess.run(["/bin/sh", "-c", script], stdout=subprocess.PIPE, check=False).stdout


def test_a_prepared_node_lacks_nothing(tmp_path):
    rules = tmp_path / "rules.nft"
    rules.write_text("table inet aiinfra_torchrun {}\n")
    digest = hashlib.sha256(rules.read_bytes()).hexdigest()
    prepared = {"user": "root", "files": {str(rules): digest}, "executables": ["/bin/sh"]}
    assert rounds.parse_check(sh(rounds.check_script(prepared)).decode()) == []


def test_the_check_names_each_thing_missing(tmp_path):
    rules = tmp_path / "rules with space.nft"
    rules.write_text("old rules\n")
    prepared = {"user": "no-such-user-aiinfra", "units": ["aiinfra-no-such-unit.service"],
                "files": {str(rules): hashlib.sha256(b"new rules\n").hexdigest(),
                          str(tmp_path / "absent.nft"): "0" * 64},
                "executables": [str(tmp_path / "python"), str(rules)]}
    missing = rounds.parse_check(sh(rounds.check_script(prepared)).decode())
    assert missing == ["user no-such-user-aiinfra", "file %s" % (tmp_path / "absent.nft"), "file %s" % rules,
                       "unit aiinfra-no-such-unit.service", "executable %s" % (tmp_path / "python"),
                       "executable %s" % rules]


def test_a_check_that_did_not_run_is_not_taken_for_ready():
    with pytest.raises(ValueError):
        rounds.parse_check("sh: 1: syntax error\n")


def test_the_log_comes_whole_and_as_written(tmp_path):
    log = tmp_path / "torchrun.log"
    data = b"".join(b"line %d \xff\xfe not utf-8\n" % i for i in range(20000))  # ~0.5 MB, bytes kept
    log.write_bytes(data)
    out = tmp_path / "outputs"
    out.mkdir()
    found = rounds.parse_collect(sh(rounds.collect_script(str(log), str(out))))
    assert found == {"outputs": "no", "log": data}
    (out / "predictions.csv").write_text("x\n")
    assert rounds.parse_collect(sh(rounds.collect_script(str(log), str(out))))["outputs"] == "yes"


def test_no_log_and_no_outputs_directory(tmp_path):
    found = rounds.parse_collect(sh(rounds.collect_script(str(tmp_path / "none.log"), str(tmp_path / "none"))))
    assert found == {"outputs": "no", "log": None}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_outputs_the_login_user_cannot_read_are_unknown(tmp_path):
    run = tempfile.mkdtemp(prefix="aiinfra-rounds-", dir="/tmp")  # 0700 at first: the parent it cannot search
    try:
        out = os.path.join(run, "outputs")
        os.mkdir(out, 0o700)
        with open(os.path.join(out, "secret.bin"), "w") as handle:
            handle.write("x")
        script = rounds.collect_script(os.path.join(run, "torchrun.log"), out)

        def as_nobody():
            return rounds.parse_collect(subprocess.run(
                ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sh", "-c", script],
                stdout=subprocess.PIPE, check=False).stdout)["outputs"]
        assert as_nobody() == "unknown"      # cannot even see whether it is there
        os.chmod(run, 0o755)
        assert as_nobody() == "unknown"      # sees it, cannot read it
        os.chmod(out, 0o755)
        assert as_nobody() == "yes"
    finally:
        shutil.rmtree(run)
