# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Polling every node of a run from one controller process, whatever Ansible's forks.

A poll is a small ``sh`` script (:func:`poll_script`; no Python started on the node) that waits a little
for the run's unit to stop, then prints the unit's state, the run's exit record and launch record, and the
new part of its log. :class:`Poller` keeps one connection per node, built from the node's inventory
variables the way Ansible builds a task's connection, and runs rounds: one poll on every node at once
(each in its own thread, so a node that hangs holds up nobody), then the caller decides once.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import ACTIVE_STATES, SPOT_NOTICE, RunDir
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun.slurm import STEP_NAME, STEP_PID
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.log import LogState
from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils.torchrun.verdict import NodeState

POLL_MARK = "@@aiinfra-torchrun@@"
PROBE_PY = ("import socket,sys\n"
            "try:\n"
            "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
            "    print('ok')\n"
            "except Exception as e:\n"
            "    print(str(e) or type(e).__name__)\n")
# where a unit's cgroup is: cgroup v2, or the unified tree of a hybrid (v1) layout
CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


def poll_script(run, offset, wait=0.0, max_bytes=262144, probe=None, probe_timeout=3.0, cgroup_roots=CGROUP_ROOTS):
    """One cheap poll of a node (plain sh, no Python unless probing) for the run ``run`` (a RunDir): waits up
    to ``wait`` seconds for the unit to stop, then prints its state, its exit and launch records and the log
    from ``offset``; see :func:`parse_poll`."""
    q = shlex.quote
    step = os.path.join(run.path, STEP_NAME)
    lines = [
        "u=%s; off=%d; n=%d" % (q(run.unit), int(offset), int(max(0.0, wait) / 0.25)),
        # the run's unit (the direct launch), or the Slurm step's program alive under its pid (torchrun_launcher=slurm)
        "up() { systemctl is-active --quiet \"$u\" && return 0; s=$(cat %s 2>/dev/null); [ -n \"$s\" ] && "
        "tr '\\0' ' ' < /proc/$s/cmdline 2>/dev/null | grep -qF %s; }" % (q(os.path.join(run.path, STEP_PID)), q(step)),
        # the wait ends when the run's exit record appears (written as the unit or Slurm step ends; a test, no
        # process) or the run is no longer up (it ended without a record: the record comes with the next poll).
        # Whether the unit is up is read from its cgroup's "populated" line (cgroup v2, or the unified tree of a
        # hybrid layout) with the shell's own read, found once per poll: no process per check. Where there is no
        # such file (cgroup v1 only, a Slurm step), systemctl once a second, as before. A systemctl per check on
        # every node competed with the job's start-up for the CPU.
        'cg=; ev=; [ "$n" -gt 0 ] && cg=$(systemctl show -p ControlGroup --value "$u" 2>/dev/null)',
        'for d in %s; do [ -n "$cg" ] && [ -r "$d$cg/cgroup.events" ] && { ev=$d$cg/cgroup.events; break; }; '
        'done' % " ".join(q(r) for r in cgroup_roots),
        'alive() { [ -n "$ev" ] || { [ $((i % 4)) -ne 0 ] || up; return; }; read -r l 2>/dev/null < "$ev" || '
        'return 1; [ "$l" = "populated 1" ]; }',
        'x=%s; i=0' % q(run.exit),
        'while [ "$n" -gt 0 ] && ! [ -s "$x" ]; do alive || break; sleep 0.25; n=$((n-1)); i=$((i+1)); done',
        'st=$(systemctl show -p ActiveState --value "$u" 2>/dev/null); [ "$st" = active ] || ! up || st=active',
        'echo "%s state $st"' % POLL_MARK,
        # the records, read by the shell (no process) and put on one line; one being written reads as part of
        # its JSON, which the parse takes as not there yet
        'line() { v=; while IFS= read -r l || [ -n "$l" ]; do v="$v$l"; done 2>/dev/null < "$1"; '
        'echo "%s $2 $v"; }' % POLL_MARK,
        'line %s exit; line %s meta; line %s notice' % (q(run.exit), q(run.meta), q(SPOT_NOTICE)),
        'size=$(stat -c %%s %s 2>/dev/null || echo 0)' % q(run.log),
        '[ "$size" -lt "$off" ] && off=0',
        '[ $((size - off)) -gt %d ] && off=$((size - %d))' % (int(max_bytes), int(max_bytes)),
        'echo "%s span $off $size"' % POLL_MARK,
    ]
    if probe:
        host, port = probe.rsplit(":", 1)
        lines.append('echo "%s probe $(python3 -c %s %s %s %s 2>&1 | tail -n 1)"'
                     % (POLL_MARK, q(PROBE_PY), q(host.strip("[]")), q(port), q(str(probe_timeout))))
    lines.append('echo "%s log"' % POLL_MARK)
    lines.append('[ "$size" -gt "$off" ] && tail -c +$((off + 1)) %s | head -c $((size - off))' % q(run.log))
    lines.append("true")
    return "\n".join(lines) + "\n"


def _json(value):
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None  # being written: the next poll reads it


def parse_poll(text, probe=None):
    """What :func:`poll_script` printed: active, unit_state, exit, meta, log_start, log_offset, log_chunk, probe."""
    head, sep, log = text.partition("%s log\n" % POLL_MARK)
    if not sep:
        raise ValueError("not the output of a torchrun poll: %r" % text[-300:])
    result = {"active": False, "unit_state": "unknown", "exit": None, "meta": None, "notice": None, "log_chunk": log,
              "probe": None}
    for line in head.splitlines():
        if not line.startswith(POLL_MARK + " "):
            continue
        key, _sep, value = line[len(POLL_MARK) + 1:].partition(" ")
        value = value.strip()
        if key == "state":
            result["unit_state"] = value or "inactive"
            result["active"] = value in ACTIVE_STATES
        elif key in ("exit", "meta", "notice"):
            result[key] = _json(value)
        elif key == "span":
            start, end = value.split()
            result["log_start"], result["log_offset"] = int(start), int(end)
        elif key == "probe":
            result["probe"] = {"endpoint": probe, "ok": value == "ok", "error": None if value == "ok" else value}
    if result["active"]:
        result["exit"] = None
    return result


class NodePoller(object):
    """One node of the run: its connection, where its log was read to, what it said. One poll at a time, in a
    daemon thread (a node that hangs cannot keep the controller from deciding, nor from exiting)."""

    def __init__(self, host, node_rank, connect, run, probe=None, timeout=0):
        self.host = host
        self.state = NodeState(host=host, node_rank=node_rank, timeout=timeout)
        self.run = run
        self.probe = probe
        self._connect = connect
        self._connection = None
        self._log = LogState()
        self._offset = 0
        self._thread = None
        self._box = None
        self._errors = 0
        self.finished = False

    @property
    def busy(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self, wait, probe=False):
        """Start one poll (returns at once)."""
        box = {"sent": time.time(), "probe": self.probe if probe else None}
        self.state.asked = self.state.asked or box["sent"]
        command = poll_script(self.run, self._offset, wait=wait, probe=box["probe"])

        def target():
            try:
                if self._connection is None:
                    self._connection = self._connect()
                rc, out, err = self._connection.exec_command("/bin/sh -c %s" % shlex.quote(command), sudoable=False)
                box["result"] = (rc, to_text(out, errors="surrogate_or_replace"),
                                 to_text(err, errors="surrogate_or_replace"))
            except Exception as exc:  # connection failures arrive as exceptions
                text = to_text(exc).strip()
                box["error"] = text.splitlines()[0] if text else repr(exc)
        self._box = box
        self._thread = threading.Thread(target=target, name="torchrun-poll-%s" % self.host)
        self._thread.daemon = True
        self._thread.start()

    def join(self, deadline):
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.time()))

    def collect(self, lose_after_errors=2):
        """Take in the answer of the last poll, if it came. Returns True when it did."""
        if self._box is None or self.busy:
            return False
        box, self._box, self._thread = self._box, None, None
        state = self.state
        if "result" in box:
            rc, out, err = box["result"]
            try:
                res = parse_poll(out, box["probe"])
            except ValueError:
                lines = (err or out or "no output").strip().splitlines()
                box["error"] = "poll failed (rc %s): %s" % (rc, lines[-1] if lines else "")
        if "error" in box:
            self._errors += 1
            if self._errors >= lose_after_errors:
                state.lost, state.lost_at = box["error"], time.time()
            return True
        self._errors = 0
        state.t = time.time()
        state.polls += 1
        if res.get("log_start", self._offset) > self._offset:
            self._log.line("[... %d bytes of log skipped ...]" % (res["log_start"] - self._offset))
        self._log.feed(res.get("log_chunk") or "")
        self._offset = res.get("log_offset", self._offset)
        meta = res.get("meta") or {}
        state.active, state.exit, state.unit_state = res["active"], res["exit"], res["unit_state"]
        state.started = bool(meta)
        state.started_at = meta.get("started_at", state.started_at)
        state.nproc_per_node = meta.get("nproc_per_node", state.nproc_per_node)
        if res.get("probe"):
            state.probe = res["probe"]
        if isinstance(res.get("notice"), dict) and not state.preempted:
            # a spot notice: the cloud takes the node back soon (kept: the node may not answer again)
            state.preempted = res["notice"]
        if not res["active"]:
            self._log.finish()
            self.finished = True
        state.log = self._log.snapshot()
        return True

    def close(self):
        if self._connection is not None and not self.busy:
            try:
                self._connection.close()
            except Exception:
                pass


class Poller(object):
    """Rounds of one poll on every node at once. ``nodes``: host -> node rank; ``connect(host)`` makes a
    connection; ``base_dir``/``run_id`` say where the run lives on the nodes."""

    def __init__(self, nodes, connect, base_dir, run_id, probe=None, timeout=0):
        run = RunDir(base_dir, run_id)
        self.nodes = dict((host, NodePoller(host, int(rank), (lambda h=host: connect(h)), run, probe, timeout))
                          for host, rank in nodes.items())

    def round(self, wait, round_timeout, probe_hosts=()):
        """Poll every node that is neither finished nor lost and has no poll under way; wait for the answers
        until ``round_timeout`` seconds have passed. Returns the hosts that answered."""
        started = time.time()
        for node in self.nodes.values():
            if not node.finished and not node.state.lost and not node.busy and node._box is None:
                node.start(wait if node.state.active or not node.state.t else 0.0, probe=node.host in probe_hosts)
        deadline = started + round_timeout
        for node in self.nodes.values():
            node.join(deadline)
        return [host for host, node in self.nodes.items() if node.collect()]

    def states(self):
        return dict((host, node.state) for host, node in self.nodes.items())

    def close(self):
        for node in self.nodes.values():
            node.close()
