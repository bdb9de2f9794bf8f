# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job manager run on a node without Ansible's module machinery: what the ``torchrun_launch`` action sends each
node in its launch round (plugin_utils ``torchrun/payload.py`` builds the program: these module_utils' sources, a
finder that imports them from memory, and the arguments, all on the interpreter's standard input, as a pipelined
module's are, so nothing of it is on a command line or in a file).

``main(args)`` is ``torchrun_job``'s ``main()`` minus AnsibleModule: the same :class:`JobManager` calls with the same
arguments, one JSON result line on standard output, ``failed``/``msg`` on an error. It imports only the standard
library and these module_utils, so a node's part of the round is one Python start, not an AnsiballZ one (measured:
``benchmarks/bench_launch.py``, the launch round).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import traceback

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.job import JobError, JobManager, Node
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.layout import SpecError

MARKER = "AIINFRA-TORCHRUN-RESULT "
# what AnsibleModule.get_bin_path adds to PATH
SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")
# what AnsibleModule.run_command gives a command: messages that parse the same on every node
LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}


def bin_path(name):
    path = os.environ.get("PATH") or os.defpath
    return shutil.which(name, path=os.pathsep.join([path] + [d for d in SBIN if d not in path.split(os.pathsep)]))


def run(argv):
    """``(rc, out, err)`` of a command (no shell), as AnsibleModule.run_command gives them; a command that cannot
    start is rc 127 and the reason."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, **LOCALE), check=False)
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror or exc)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def execute(args, node=None):
    """The result of one node's launch (``state: started``) or stop (``state: stopped``): ``torchrun_job``'s
    options in ``args``; ``node`` is how the job manager runs commands (a Node; default: subprocess here, check mode
    from ``args``)."""
    warnings = []
    if node is None:
        node = Node(run, bin_path, warnings.append, check_mode=bool(args.get("check_mode")))
    try:
        job = JobManager(node, args.get("base_dir") or "/var/lib/aiinfra/torchrun", args["run_id"])
        if not node.bin_path("systemd-run") and not node.check_mode:
            return {"failed": True, "msg": "systemd-run is missing: the torchrun role needs systemd on the nodes"}
        if args.get("state") == "stopped":
            result = job.stop()
        else:
            result = job.start(args["spec"], rdzv_id=args.get("rdzv_id"), secret_env=args.get("secret_env"),
                               script_content=args.get("script_content"),
                               restart_finished=bool(args.get("restart_finished")),
                               hosts_file=args.get("hosts_file") or "/etc/hosts")
    except SpecError as exc:
        result = {"failed": True, "msg": str(exc)}
    except JobError as exc:
        result = dict(exc.result, failed=True, msg=exc.msg)
    if warnings:
        result["warnings"] = warnings
    return result


def main(args, out=None):
    out = out or sys.stdout
    try:
        result = execute(args)
    except Exception as exc:  # the node's own error, with where it happened, as a module's traceback would be
        result = {"failed": True, "msg": "torchrun_job on the node: %s: %s" % (type(exc).__name__, exc),
                  "exception": traceback.format_exc()}
    out.write("\n" + MARKER + json.dumps(result) + "\n")
    out.flush()
