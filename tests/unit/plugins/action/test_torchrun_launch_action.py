"""The torchrun_launch action: every node's launch in one parallel round (one thread a node, each over its own
connection with the task's become), a node that cannot start named with its reason, no secret in the result."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import threading
from unittest import mock

import pytest

from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.aiinfra.gpu_cluster.plugins.action import torchrun_launch
from ansible_collections.aiinfra.gpu_cluster.plugins.action.torchrun_launch import ActionModule
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.runner import MARKER

SECRET = "hf_launch-s3cr3t"
HOSTS = ["n-%d" % i for i in range(8)]


def plan(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('x')\n")
    return {"run_id": "r1", "rdzv_id": "r1-abc", "script": str(script),
            "hosts": dict((h, i) for i, h in enumerate(HOSTS)),
            "specs": dict((h, {"node_rank": i}) for i, h in enumerate(HOSTS))}


def program_args(program):
    """The arguments a payload program carries (plugin_utils torchrun/payload.py)."""
    found = re.search(r"b64decode\('([A-Za-z0-9+/=]+)'\)", program)
    return json.loads(base64.b64decode(found.group(1)).decode("utf-8"))["args"]


class FakeModuleRunner(object):
    """Stands in for the per-node action that runs the job manager over the node's connection: the payload program
    on the interpreter's standard input where the connection pipelines, else the torchrun_job module."""

    def __init__(self, answer, pipelining=True):
        self.answer = answer
        self.pipelining = pipelining
        self.calls = {}
        self.commands = {}
        self.lock = threading.Lock()

    def get(self, name, task, connection, **kwargs):
        runner = mock.MagicMock()
        runner._is_pipelining_enabled.return_value = self.pipelining

        def execute(module_name, module_args, task_vars):
            with self.lock:
                self.calls[connection.host] = (module_name, module_args, connection.become)
            return self.answer(connection.host, module_args)

        def low_level(cmd, sudoable=True, in_data=None):
            args = program_args(in_data)
            assert args.pop("check_mode") is False
            with self.lock:
                self.calls[connection.host] = ("payload", args, connection.become and sudoable)
                self.commands[connection.host] = cmd
            answer = self.answer(connection.host, args)
            return {"rc": 0, "stdout": "noise\n%s%s\n" % (MARKER, json.dumps(answer)), "stderr": ""}
        runner._execute_module.side_effect = execute
        runner._low_level_execute_command.side_effect = low_level
        return runner


def launch(tmp_path, answer, become=True, connect=None, pipelining=True, **args):
    task = Task()
    task.args = dict({"plan": plan(tmp_path), "secret_env": {"HF_TOKEN": SECRET}}, **args)
    task.become = become
    runner = FakeModuleRunner(answer, pipelining)
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    action = ActionModule(task, connection, PlayContext(), None, None, None)
    hostvars = dict((h, {"inventory_hostname": h, "ansible_facts": {"discovered_interpreter_python": "/usr/bin/py"}})
                    for h in HOSTS)

    def host_connection(action, host, task_vars, become=False):
        if connect:
            connect(host)
        conn = mock.MagicMock()
        conn.host, conn.become = host, become
        conn._shell.tmpdir = None
        return conn
    with mock.patch.object(torchrun_launch, "host_connection", host_connection), \
            mock.patch.object(torchrun_launch, "action_loader", runner):
        result = action.run(task_vars={"hostvars": hostvars})
    return result, runner


@pytest.mark.parametrize("pipelining", [True, False])
def test_every_node_starts_in_one_round(tmp_path, pipelining):
    barrier = threading.Barrier(len(HOSTS), timeout=10)

    def answer(host, module_args):
        barrier.wait()  # only passes when every node's launch is under way at once
        return {"changed": True, "action": "started", "command": "torchrun ...", "invocation": {"x": 1}}
    result, runner = launch(tmp_path, answer, pipelining=pipelining)
    assert result["failed_hosts"] == [] and result["changed"]
    assert sorted(runner.calls) == HOSTS
    for host, (name, module_args, become) in runner.calls.items():
        # pipelined: the payload on the interpreter the play found on the node; else the module
        assert name == ("payload" if pipelining else "aiinfra.gpu_cluster.torchrun_job") and become is True
        if pipelining:
            assert runner.commands[host] == "/usr/bin/py -I -"  # nothing of the arguments on the command line
        assert module_args["spec"] == {"node_rank": HOSTS.index(host)} and module_args["rdzv_id"] == "r1-abc"
        assert module_args["script_content"] == "print('x')\n"
        assert module_args["secret_env"] == {"HF_TOKEN": SECRET}  # to the node's module (no_log there) only
    assert "invocation" not in result["nodes"]["n-0"]
    assert SECRET not in repr(result)


def test_a_node_that_cannot_start_is_named_with_its_reason(tmp_path):
    def answer(host, module_args):
        if host == "n-3":
            return {"failed": True, "msg": "torchrun is not at /x on this node (%s)" % SECRET}
        return {"changed": True, "action": "started"}

    def connect(host):
        if host == "n-5":
            raise AnsibleConnectionFailure("ssh: connect to host n-5 port 22: No route to host")
    result, runner = launch(tmp_path, answer, connect=connect)
    assert result["failed_hosts"] == ["n-3", "n-5"]
    assert "torchrun is not at /x" in result["nodes"]["n-3"]["msg"]
    assert result["nodes"]["n-5"]["unreachable"] and "No route to host" in result["nodes"]["n-5"]["msg"]
    assert SECRET not in repr(result)


def test_a_node_that_hangs_does_not_hold_the_round(tmp_path):
    release = threading.Event()

    def answer(host, module_args):
        if host == "n-1":
            release.wait(20)
        return {"changed": True, "action": "started"}
    try:
        result, runner = launch(tmp_path, answer, timeout=1)
    finally:
        release.set()
    assert result["failed_hosts"] == ["n-1"] and "did not answer within 1 s" in result["nodes"]["n-1"]["msg"]


def test_stop_on_every_node(tmp_path):
    result, runner = launch(tmp_path, lambda h, a: {"changed": True, "action": "stopped"}, state="stopped",
                            hosts=["n-0", "n-2"])
    assert sorted(runner.calls) == ["n-0", "n-2"]
    assert runner.calls["n-0"][1] == {"run_id": "r1", "base_dir": "/var/lib/aiinfra/torchrun", "state": "stopped"}


def test_module_vars_keep_the_interpreter_only():
    hv = {"h": {"inventory_hostname": "h", "ansible_python_interpreter": "/p", "secret": SECRET,
                "ansible_facts": {"discovered_interpreter_python": "/d", "hostname": "h"}}}
    assert torchrun_launch.module_vars(hv, "h") == {"inventory_hostname": "h", "ansible_python_interpreter": "/p",
                                                    "ansible_facts": {"discovered_interpreter_python": "/d"}}


@pytest.mark.parametrize("become", [True, False])
def test_become_follows_the_task(tmp_path, become):
    result, runner = launch(tmp_path, lambda h, a: {"action": "started"}, become=become)
    assert set(b for _n, _a, b in runner.calls.values()) == {become}


def sh_round(tmp_path, state, node_answer=None, **args):
    """A checked/collected round whose nodes' connections run the round's script with the real sh here (n-k's
    files live under tmp_path/n-k); ``node_answer(host, script)`` may replace a node's answer."""
    task = Task()
    task.args = dict({"plan": plan(tmp_path), "state": state}, **args)
    task.become = True
    action = ActionModule(task, mock.MagicMock(), PlayContext(), None, None, None)
    seen = {}

    def host_connection(action, host, task_vars, become=False):
        seen[host] = become
        conn = mock.MagicMock()

        def exec_command(cmd, sudoable=True):
            assert sudoable is False
            if node_answer:
                answer = node_answer(host, cmd)
                if answer is not None:
                    return answer
            proc = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd=str(tmp_path), check=False)
            return proc.returncode, proc.stdout, proc.stderr
        conn.exec_command.side_effect = exec_command
        return conn
    with mock.patch.object(torchrun_launch, "host_connection", host_connection):
        result = action.run(task_vars={"hostvars": {}})
    assert set(seen.values()) == {False}  # the login user: no become, whatever the task's
    return result


def test_checked_names_the_nodes_that_lack_something(tmp_path):
    rules = tmp_path / "rules.nft"
    rules.write_text("rules\n")
    good = hashlib.sha256(b"rules\n").hexdigest()

    def node_answer(host, cmd):
        if host == "n-2":  # this node's rules are old
            return 0, subprocess.run(["/bin/sh", "-c", cmd.replace(good, "0" * 64)], stdout=subprocess.PIPE,
                                     check=False).stdout, b""
        if host == "n-4":
            raise AnsibleConnectionFailure("ssh: connect to host n-4 port 22: Connection refused")
        if host == "n-6":
            return 127, b"", b"sh: not found"
        return None
    result = sh_round(tmp_path, "checked", node_answer,
                      prepared={"user": "root", "files": {str(rules): good}, "executables": ["/bin/sh"]})
    assert result["unprepared"] == ["n-2", "n-4", "n-6"]
    assert result["nodes"]["n-2"]["missing"] == ["file %s" % rules]
    assert result["nodes"]["n-0"] == {"missing": []}
    assert result["nodes"]["n-4"]["unreachable"] and result["failed_hosts"] == ["n-4", "n-6"]
    assert not result["changed"]


def test_collected_brings_each_log_and_names_the_nodes_with_outputs(tmp_path):
    run = torchrun_launch.RunDir(str(tmp_path / "base"), "r1")
    os.makedirs(run.outputs)
    with open(run.log, "wb") as handle:
        handle.write(b"rank 0 joined\n\xff done\n")
    dest = tmp_path / "runs"
    other = tmp_path / "n-1-outputs"
    other.mkdir()
    (other / "predictions.csv").write_text("x\n")

    def node_answer(host, cmd):
        if host == "n-1":  # its job left outputs
            return 0, subprocess.run(["/bin/sh", "-c", cmd.replace(run.outputs, str(other))],
                                     stdout=subprocess.PIPE, check=False).stdout, b""
        if host == "n-3":
            raise AnsibleConnectionFailure("ssh: connect to host n-3 port 22: No route to host")
        if host == "n-5":  # never started: no log
            return 0, subprocess.run(["/bin/sh", "-c", cmd.replace(run.log, run.log + ".none")],
                                     stdout=subprocess.PIPE, check=False).stdout, b""
        return None
    result = sh_round(tmp_path, "collected", node_answer, base_dir=str(tmp_path / "base"), dest=str(dest),
                      hosts=["n-0", "n-3", "n-5", "n-1"])
    assert (dest / "n-0" / "torchrun.log").read_bytes() == b"rank 0 joined\n\xff done\n"
    assert result["nodes"]["n-0"]["log"] == str(dest / "n-0" / "torchrun.log")
    assert "log" not in result["nodes"]["n-5"] and not (dest / "n-5").exists()
    assert result["nodes"]["n-3"]["unreachable"] and not (dest / "n-3").exists()
    assert result["outputs"] == ["n-1"] and result["failed_hosts"] == ["n-3"]


def test_collected_needs_a_destination(tmp_path):
    with pytest.raises(Exception, match="dest"):
        sh_round(tmp_path, "collected")


def test_a_node_silent_through_a_collection_round_counts_as_unreachable(tmp_path):
    release = threading.Event()

    def node_answer(host, cmd):
        if host == "n-2":
            release.wait(20)
            return 255, b"", b""
        return None
    try:
        result = sh_round(tmp_path, "collected", node_answer, base_dir=str(tmp_path / "base"),
                          dest=str(tmp_path / "runs"), hosts=["n-0", "n-2"], timeout=1)
    finally:
        release.set()
    assert result["nodes"]["n-2"]["unreachable"] and "did not answer within 1 s" in result["nodes"]["n-2"]["msg"]
    assert not result["nodes"]["n-0"].get("unreachable") and result["failed_hosts"] == ["n-2"]
