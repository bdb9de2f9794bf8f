"""The launch round's payload program (plugin_utils torchrun/payload.py + module_utils torchrun/runner.py), run for
real: the node's own python3 with ``-I`` and no Ansible installed (the system's /usr/bin/python3 here), the
program on standard input, a stand-in ``systemctl`` first on PATH."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import payload

NODE_PYTHON = "/usr/bin/python3"
SECRET = "hf_payload-s3cr3t"


def node_python():
    if not os.access(NODE_PYTHON, os.X_OK):
        pytest.skip("no %s" % NODE_PYTHON)
    return NODE_PYTHON


def run_program(tmp_path, args, systemctl="ActiveState=inactive\nSubState=dead\nMainPID=0\nLoadState=not-found\n",
                interpreter=None, rc=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("systemctl", "systemd-run"):
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\necho \"$0 $*\" >> %s/calls\nprintf '%%s' '%s'\nexit %d\n" % (tmp_path, systemctl, rc))
        tool.chmod(0o755)
    env = {"PATH": "%s:/usr/bin:/bin" % bin_dir, "PYTHONPATH": os.pathsep.join(sys.path)}  # -I ignores PYTHONPATH
    proc = subprocess.run(["/bin/sh", "-c", payload.command(interpreter)], input=payload.program(args).encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False, timeout=60)
    return proc, payload.parse(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_the_program_runs_the_job_manager_on_a_python_without_ansible(tmp_path):
    python = node_python()
    assert subprocess.run([python, "-I", "-c", "import ansible"], capture_output=True, check=False).returncode != 0, \
        "this check needs a python3 without Ansible"
    args = {"run_id": "r-1", "base_dir": str(tmp_path / "base"), "state": "stopped",
            "secret_env": {"HF_TOKEN": SECRET}}
    proc, result = run_program(tmp_path, args, interpreter=python)
    assert proc.returncode == 0, proc.stderr
    # JobManager.stop(): the unit asked about (through the stand-in systemctl), nothing to stop, no exit record
    assert result["action"] == "absent" and result["changed"] is False, result
    assert result["unit"] == "aiinfra-torchrun-r-1.service" and result["exit"] is None
    assert "systemctl show aiinfra-torchrun-r-1.service" in (tmp_path / "calls").read_text()


def test_the_interpreter_is_found_when_none_is_named(tmp_path):
    node_python()
    assert "exec \"$p\" -I -" in payload.command(None)
    proc, result = run_program(tmp_path, {"run_id": "r-2", "base_dir": str(tmp_path / "b"), "state": "stopped"})
    assert result["action"] == "absent", (proc.stderr, result)


def test_an_error_on_the_node_is_a_failed_result_with_its_reason(tmp_path):
    python = node_python()
    proc, result = run_program(tmp_path, {"run_id": "../etc", "base_dir": str(tmp_path), "state": "stopped"},
                               interpreter=python)
    assert result["failed"] and "run id '../etc'" in result["msg"], result
    # a failing systemctl: the job manager's own error, as the module gave it
    proc, result = run_program(tmp_path, {"run_id": "r-3", "base_dir": str(tmp_path), "state": "stopped"},
                               systemctl="", interpreter=python, rc=1)
    assert result["failed"] and result["msg"].startswith("systemctl show aiinfra-torchrun-r-3.service failed"), result


def test_a_start_without_a_spec_fails_on_the_node_without_a_traceback_in_msg(tmp_path):
    python = node_python()
    proc, result = run_program(tmp_path, {"run_id": "r-4", "base_dir": str(tmp_path), "spec": {},
                                          "secret_env": {"HF_TOKEN": SECRET}}, interpreter=python)
    assert result["failed"] and "Traceback" not in result["msg"], result
    assert SECRET not in proc.stdout.decode() + proc.stderr.decode()


def test_no_result_line_is_a_failure_naming_what_the_node_said():
    result = payload.parse(127, "", "sudo: a password is required\n")
    assert result["failed"] and "rc 127" in result["msg"] and "a password is required" in result["msg"]
    assert payload.parse(0, "junk\n%s[1]\n" % "AIINFRA-TORCHRUN-RESULT ", "")["failed"]


def test_the_program_carries_every_module_runner_imports():
    texts = payload.sources()
    for name, text in texts.items():
        for line in text.splitlines():
            if line.startswith("from ansible_collections.") or line.startswith("import ansible"):
                imported = line.split()[1]
                assert imported in texts, "%s imports %s, which the program does not carry" % (name, imported)
