# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for aiinfra.gpu_cluster.torchrun_launch (documented in plugins/modules/torchrun_launch.py).

Runs once for the whole job (``run_once``): every node's part of the run starts in one parallel round, one thread a
node, each over that node's own connection (plugin_utils ``core_compat.host_connection``, the watch's connections,
with the task's ``become``), running the node-side job manager there - not a per-host task batched by ``forks``.
Where the connection pipelines, the job manager goes as one program on the node's Python's standard input
(plugin_utils ``torchrun/payload.py``: one interpreter start, no AnsiballZ; the secret environment is in the program,
never on a command line); otherwise as the ``torchrun_job`` module, sent the way Ansible sends a module.

``state: checked`` and ``state: collected`` are the rounds around a launch, plain ``sh`` as the login user (the
watch's way; plugin_utils ``torchrun/rounds.py``): which nodes lack what the launch needs (only those are prepared),
and after the job each node's whole log into the run directory and whether it left outputs.
"""

from __future__ import annotations

import os
import shlex
import threading
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import action_loader
from ansible.template import Templar
from ansible.utils.display import Display

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.argspec import argument_spec_for
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.core_compat import host_connection, require_known
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun import payload, rounds

display = Display()

# secret_env: documented as never shown (module documentation has no no_log key); its values are masked out of the
# result too
ARGUMENT_SPEC = argument_spec_for("torchrun_launch", no_log=("secret_env",))
JOB_MODULE = "aiinfra.gpu_cluster.torchrun_job"
# what the node-side module needs of a node's variables (its interpreter, as Ansible found it before)
MODULE_VARS = ("inventory_hostname", "ansible_python_interpreter", "ansible_syslog_facility")
# Ansible's plugin loaders import plugins lazily and are not made for threads: a second thread could see a plugin's
# module half imported. Making a node's connection and its module runner takes this lock (no I/O happens there: the
# connection connects on its first command, in the node's own thread, unlocked).
LOADERS = threading.Lock()
# building the module's payload (module_common: the module and its module_utils, zipped once and cached, then this
# node's arguments) imports through the collection loader too: one at a time (milliseconds once the zip is cached)
BUILD = threading.Lock()


def locked(func, lock):
    def call(*args, **kwargs):
        with lock:
            return func(*args, **kwargs)
    return call


def module_vars(hostvars, host):
    """The variables a module run on ``host`` reads (its interpreter, discovered or set), as a plain dict."""
    hv = hostvars[host]
    out = {}
    for name in MODULE_VARS:
        if name in hv:
            out[name] = hv[name]
    facts = hv["ansible_facts"] if "ansible_facts" in hv else {}
    out["ansible_facts"] = dict((k, v) for k, v in (facts or {}).items() if k.startswith("discovered_interpreter_"))
    return out


def interpreter(variables):
    """The Python the host's inventory names (ansible_python_interpreter, unless it asks for discovery) or that
    Ansible discovered on it earlier in the play; None: the payload picks the node's python3."""
    named = variables.get("ansible_python_interpreter")
    if named and not str(named).startswith("auto"):
        return str(named)
    return variables["ansible_facts"].get("discovered_interpreter_python") or None


def first_line(exc):
    text = to_text(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def guarded(box, work):
    """One node's part of a round, in its thread: ``work(hold)`` puts the node's connection in ``hold`` (closed
    after); a failure is this node's alone (unreachable, or its error), the others go on."""
    hold = {}
    try:
        work(hold)
    except AnsibleConnectionFailure as exc:
        box.update(unreachable=True, error=first_line(exc))
    except Exception as exc:  # one node's failure is its own: the others still start
        box["error"] = first_line(exc)
    finally:
        if hold.get("connection") is not None:
            try:
                hold["connection"].close()
            except Exception:
                pass


def clean(result):
    """A node's module result without what is no business of the play (the invocation, internal keys)."""
    return dict((k, v) for k, v in result.items() if k != "invocation" and not k.startswith("_ansible"))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        plan = args["plan"]
        hosts = args["hosts"] if args["hosts"] is not None else sorted(plan["hosts"], key=lambda h: plan["hosts"][h])
        if not hosts:
            raise AnsibleError("torchrun_launch: no nodes to launch on")
        require_known("torchrun_launch")  # an unknown ansible-core fails here, before any node is touched
        script_content = None
        if args["state"] == "started" and plan.get("script"):
            try:
                with open(plan["script"], "rb") as handle:
                    script_content = to_text(handle.read(), errors="surrogate_or_strict")
            except (IOError, OSError) as exc:
                raise AnsibleError("torchrun_launch: cannot read the training script %s: %s" % (plan["script"], exc))
        if args["state"] == "collected" and not args["dest"]:
            raise AnsibleError("torchrun_launch: state collected needs dest (the run directory on the controller)")
        boxes = dict((host, {}) for host in hosts)
        threads = []
        started = time.time()
        run = RunDir(args["base_dir"], plan["run_id"])
        for host in hosts:
            if args["state"] in ("checked", "collected"):
                script = (rounds.check_script(args["prepared"] or {}) if args["state"] == "checked"
                          else rounds.collect_script(run.log, run.outputs))
                thread = threading.Thread(target=self._sh, name="torchrun-%s-%s" % (args["state"], host),
                                          args=(host, script, args, task_vars, boxes[host]))
                thread.daemon = True
                thread.start()
                threads.append(thread)
                continue
            if args["state"] == "started":
                module_args = {"run_id": plan["run_id"], "base_dir": args["base_dir"], "spec": plan["specs"][host],
                               "rdzv_id": plan.get("rdzv_id") or plan["run_id"],
                               "restart_finished": args["restart_finished"], "hosts_file": args["hosts_file"],
                               "secret_env": args["secret_env"] or {}}
                if script_content is not None:
                    module_args["script_content"] = script_content
            else:
                module_args = {"run_id": plan["run_id"], "base_dir": args["base_dir"], "state": "stopped"}
            thread = threading.Thread(target=self._one, name="torchrun-launch-%s" % host,
                                      args=(host, module_args, task_vars, boxes[host]))
            thread.daemon = True  # a node that hangs cannot keep the controller from deciding
            thread.start()
            threads.append(thread)
        deadline = started + args["timeout"]
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))
        nodes = {}
        for host in hosts:
            box = boxes[host]
            if "result" in box:
                nodes[host] = box["result"]
            else:
                # a node silent for the whole of a check or collection round (plain sh, no work of its own) counts
                # as unreachable, as the per-host fetch it replaces counted a node it could not reach
                silent = "error" not in box and args["state"] in ("checked", "collected")
                nodes[host] = {"failed": True, "unreachable": bool(box.get("unreachable")) or silent,
                               "msg": box.get("error") or "it did not answer within %d s" % args["timeout"]}
        # the nodes mask the secret environment themselves; nothing a node or a connection said may carry it either
        secrets = set(str(v) for v in (args["secret_env"] or {}).values() if v not in (None, ""))
        if secrets:
            nodes = remove_values(nodes, secrets)
        for host in hosts:  # what a node's module warned of, as its own task would have shown it
            for warning in nodes[host].pop("warnings", None) or []:
                display.warning("%s: %s" % (host, warning))
        failed = [h for h in hosts if nodes[h].get("failed") or nodes[h].get("unreachable")
                  or (args["state"] == "started" and "action" not in nodes[h])]
        result.update(changed=any(n.get("changed") for n in nodes.values()), nodes=nodes, failed_hosts=failed,
                      started=started, ended=time.time())
        if args["state"] == "checked":
            # a node that could not be checked is prepared too (its tasks then say what is wrong with it)
            result["unprepared"] = [h for h in hosts if h in failed or nodes[h].get("missing")]
        elif args["state"] == "collected":
            result["outputs"] = [h for h in hosts if nodes[h].get("outputs") in ("yes", "unknown")]
        return result

    def _sh(self, host, script, args, task_vars, box):
        """One node's check or collection, in its own thread: ``sh`` as the login user over its connection (no
        become, no Python on the node, as the watch's polls)."""
        def work(hold):
            with LOADERS:
                hold["connection"] = host_connection(self, host, task_vars, become=False)
            rc, out, err = hold["connection"].exec_command("/bin/sh -c %s" % shlex.quote(script), sudoable=False)
            if args["state"] == "checked":
                box["result"] = {"missing": rounds.parse_check(to_text(out, errors="surrogate_or_replace"))}
                return
            found = rounds.parse_collect(out if isinstance(out, bytes) else out.encode("utf-8", "surrogateescape"))
            res = {"outputs": found["outputs"]}
            if found["log"] is not None:
                folder = os.path.join(args["dest"], host)
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, "torchrun.log")
                with open(path, "wb") as handle:
                    handle.write(found["log"])
                res["log"] = path
            box["result"] = res
        guarded(box, work)

    def _one(self, host, module_args, task_vars, box):
        """One node's launch, in its own thread: its connection (with become), the job manager run over it - the
        payload program (plugin_utils ``torchrun/payload.py``) on the node's Python's standard input where the
        connection pipelines, else the ``torchrun_job`` module the way Ansible runs a module without pipelining."""
        def work(hold):
            with LOADERS:
                connection = hold["connection"] = host_connection(self, host, task_vars, become=self._task.become)
                variables = module_vars(task_vars["hostvars"], host)
                action = action_loader.get(
                    "ansible.legacy.normal", task=self._task, connection=connection, play_context=self._play_context,
                    loader=self._loader, templar=Templar(loader=self._loader, variables=variables),
                    shared_loader_obj=self._shared_loader_obj)
                action._configure_module = locked(action._configure_module, BUILD)
            if action._is_pipelining_enabled("new"):
                args = dict(module_args, check_mode=bool(self._task.check_mode))
                res = action._low_level_execute_command(
                    payload.command(interpreter(variables)), sudoable=True, in_data=payload.program(args))
                box["result"] = clean(payload.parse(res.get("rc"), res.get("stdout") or "", res.get("stderr") or ""))
                return
            res = action._execute_module(module_name=JOB_MODULE, module_args=dict(module_args), task_vars=variables)
            if connection._shell.tmpdir:  # not pipelined: the module's temporary directory goes
                action._remove_tmp_path(connection._shell.tmpdir)
            box["result"] = clean(res)
        guarded(box, work)
