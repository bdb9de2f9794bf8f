# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two cheap rounds of ``torchrun_launch`` around a launch: plain ``sh`` run as the login user over each node's
connection (no Python started on the node, as the watch's polls), one node a thread, all at once.

- :func:`check_script` / :func:`parse_check` (``state: checked``): what a launch needs that a node lacks - the job's
  user, a file with the wanted content (the job's host firewall rules), a unit that must be active (the unit that
  loads them), a program (TensorFlow's python). Only the nodes that lack something go through the per-node
  preparation tasks; a cluster prepared by an earlier run skips them entirely.
- :func:`collect_script` / :func:`parse_collect` (``state: collected``): after the job, each node's whole log (read as
  the watch reads it) and whether the job left outputs to bring back.
"""

from __future__ import annotations

import shlex

MARK = "@@aiinfra-round@@"


def check_script(prepared):
    """``prepared``: ``user`` (a name that must exist), ``files`` (path -> sha256 of its wanted content), ``units``
    (units that must be active), ``executables`` (paths that must be executable). Prints one line per thing missing,
    then the mark."""
    q = shlex.quote
    lines = []
    if prepared.get("user"):
        user = prepared["user"]
        lines.append("getent passwd %s >/dev/null 2>&1 || echo %s" % (q(user), q("user " + user)))
    for path, digest in sorted((prepared.get("files") or {}).items()):
        lines.append('[ "$(sha256sum %s 2>/dev/null | cut -d " " -f 1)" = %s ] || echo %s'
                     % (q(path), q(digest), q("file " + path)))
    for unit in prepared.get("units") or []:
        lines.append("systemctl is-active --quiet %s 2>/dev/null || echo %s" % (q(unit), q("unit " + unit)))
    for path in prepared.get("executables") or []:
        lines.append("[ -x %s ] || echo %s" % (q(path), q("executable " + path)))
    lines.append("echo %s" % MARK)
    return "\n".join(lines) + "\n"


def parse_check(text):
    """What :func:`check_script` printed: the list of missing things (``user NAME``, ``file PATH`` ...)."""
    head, sep, _rest = text.partition(MARK)
    if not sep:
        raise ValueError("not the output of a readiness check: %r" % text[-300:])
    return [line.strip() for line in head.splitlines() if line.strip()]


def collect_script(log, outputs):
    """Says whether the job left outputs in ``outputs`` (``yes``, ``no``, or ``unknown`` when the login user cannot
    read the directory - the packing task, run as root, then looks), then prints the log ``log`` whole."""
    q = shlex.quote
    return "\n".join([
        "o=%s; l=%s" % (q(outputs), q(log)),
        # "no" only when the login user can see it: the directory's parent searchable, the directory readable
        'p=$(dirname "$o")',
        'if ! [ -x "$p" ] || { [ -d "$o" ] && ! { [ -r "$o" ] && [ -x "$o" ]; }; }; then s=unknown; '
        'elif [ -n "$(ls -A "$o" 2>/dev/null)" ]; then s=yes; else s=no; fi',
        '[ -f "$l" ] && g=yes || g=no',
        'echo "%s outputs $s log $g"' % MARK,
        '[ "$g" = yes ] && cat "$l"',
        "true",
    ]) + "\n"


def parse_collect(data):
    """What :func:`collect_script` printed (bytes): ``{"outputs": "yes"|"no"|"unknown", "log": bytes or None}``."""
    mark = MARK.encode() + b" outputs "
    start = data.find(mark)
    if start < 0:
        raise ValueError("not the output of a log collection: %r" % data[-300:])
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end
    fields = data[start + len(mark):end].decode("ascii", "replace").split()
    outputs = fields[0] if fields else "unknown"
    has_log = len(fields) >= 3 and fields[1] == "log" and fields[2] == "yes"
    return {"outputs": outputs if outputs in ("yes", "no", "unknown") else "unknown",
            "log": data[end + 1:] if has_log else None}
