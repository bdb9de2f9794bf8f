"""The torchrun_launch action: every node's launch in one parallel round (one thread a node, each over its own
connection with the task's become), a node that cannot start named with its reason, no secret in the result."""

from __future__ import annotations

import threading
from unittest import mock

import pytest

from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task

from ansible_collections.aiinfra.gpu_cluster.plugins.action import torchrun_launch
from ansible_collections.aiinfra.gpu_cluster.plugins.action.torchrun_launch import ActionModule

SECRET = "hf_launch-s3cr3t"
HOSTS = ["n-%d" % i for i in range(8)]


def plan(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('x')\n")
    return {"run_id": "r1", "rdzv_id": "r1-abc", "script": str(script),
            "hosts": dict((h, i) for i, h in enumerate(HOSTS)),
            "specs": dict((h, {"node_rank": i}) for i, h in enumerate(HOSTS))}


class FakeModuleRunner(object):
    """Stands in for the per-node action that runs torchrun_job over the node's connection."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = {}
        self.lock = threading.Lock()

    def get(self, name, task, connection, **kwargs):
        runner = mock.MagicMock()

        def execute(module_name, module_args, task_vars):
            with self.lock:
                self.calls[connection.host] = (module_name, module_args, connection.become)
            return self.answer(connection.host, module_args)
        runner._execute_module.side_effect = execute
        return runner


def launch(tmp_path, answer, become=True, connect=None, **args):
    task = Task()
    task.args = dict({"plan": plan(tmp_path), "secret_env": {"HF_TOKEN": SECRET}}, **args)
    task.become = become
    runner = FakeModuleRunner(answer)
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


def test_every_node_starts_in_one_round(tmp_path):
    barrier = threading.Barrier(len(HOSTS), timeout=10)

    def answer(host, module_args):
        barrier.wait()  # only passes when every node's launch is under way at once
        return {"changed": True, "action": "started", "command": "torchrun ...", "invocation": {"x": 1}}
    result, runner = launch(tmp_path, answer)
    assert result["failed_hosts"] == [] and result["changed"]
    assert sorted(runner.calls) == HOSTS
    for host, (name, module_args, become) in runner.calls.items():
        assert name == "aiinfra.gpu_cluster.torchrun_job" and become is True
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
