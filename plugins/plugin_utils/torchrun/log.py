# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a node's torchrun log (controller side): the agent's rendezvous progress, the JSON lines the job
prints (``joined`` / ``step`` / ``checkpoint`` / ``done`` ...), restarts and errors, fed in chunks as the
poller brings them."""

from __future__ import annotations

import json
import re
from collections import deque

# torchrun agent log lines (LOGLEVEL=INFO), torch 2.x
ATTEMPT_RE = re.compile(r"The node '([^']+)' attempts to join the next round of the rendezvous '([^']*)'")
JOINED_RE = re.compile(r"The node '([^']+)' has joined round (\d+) of the rendezvous '([^']*)' as rank (\d+) "
                       r"in a world of size (\d+)")
RDZV_START_RE = re.compile(r"\] \[[^\]]*\] Rendezvous'ing worker group")
RDZV_DONE_RE = re.compile(r"\] \[[^\]]*\] Rendezvous complete for workers")
RDZV_FIELD_RE = re.compile(r"\]\s+(restart_count|group_rank|group_world_size)=(\d+)\s*$")
# a TensorFlow job (torchrun_framework tensorflow, no torchrun agent): TensorFlow's own lines as it sets up its
# MultiWorkerMirroredStrategy from TF_CONFIG (it reached the cluster set-up)
TF_ATTEMPT_RE = re.compile(r"(MultiWorkerMirroredStrategy with cluster_spec|Enabled multi-worker collective ops)")
# torchrun's agent got a signal from outside (systemctl stop, kill, the node shutting down): it stops its workers
# and exits 1, which its exit record alone cannot tell from a failure of its own. Only the agent's own line counts
# (its logger's source, no worker's [default0]: prefix): a training script printing the words does not.
SIGNAL_RE = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ \S*torch/distributed/elastic/agent/server/api\.py:\d+\] "
                       r"Received (\S+) death signal")
RESTART_RE = re.compile(r"Worker group (FAILED|UNHEALTHY)\. (\d+)/(\d+) attempts left; will restart worker group")
TEE_PREFIX_RE = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_]*?)(\d+)\]:")
ERROR_RE = re.compile(r"(Error|Exception|Traceback|error:|FAILED|failed|Killed|exitcode)")

# lines that say nothing to a reader of a failure: C++ stack frames, Python's ^^^^ markers
NOISE_RE = re.compile(r"^(\[[A-Za-z_]*\d+\]:)?(\[rank\d+\]:)?\s*(frame #\d+:|\^+\s*$|~*\^+~*\s*$)")
LIFECYCLE_EVENTS = ("joined", "resume", "checkpoint", "done")


def strip_prefix(line):
    """A line without torchrun's ``[default0]:`` prefix (added by ``--tee``)."""
    match = TEE_PREFIX_RE.match(line)
    return line[match.end():] if match else line


def parse_json_line(line):
    """The JSON object a line carries (tolerating a torchrun ``[default0]:`` prefix), else None."""
    start = line.find("{")
    if start < 0 or not line.rstrip().endswith("}"):
        return None
    try:
        value = json.loads(line[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_step(obj):
    return isinstance(obj.get("step"), int) and isinstance(obj.get("loss"), (int, float)) \
        and not isinstance(obj.get("loss"), bool)


class LogState(object):
    """What a node's log says so far; fed in chunks (``feed``), cheap to keep per node."""

    def __init__(self, keep_steps=False, tail=30):
        self.ranks = {}           # global rank -> its latest "joined" event
        self.attempted = False    # the torchrun agent reached the rendezvous store
        self.joined = None        # {"round", "group_rank", "world"} once the rendezvous completed
        self.restarts = 0          # the worker group's restart count (torchrun's restart_count)
        self.restart_requests = 0  # "will restart worker group" after a failure on this node
        self.death_signal = None   # the signal torchrun's agent said it received ("15"), if it did
        self.last_metrics = None
        self.last_step = None
        self.first_step = None
        self.done = None
        self.resume = None
        self.last_checkpoint = None
        self.steps = [] if keep_steps else None
        self.tail = deque(maxlen=tail)
        self.errors = deque(maxlen=12)
        self.lines = 0
        self._carry = ""
        self._rdzv = None

    def feed(self, text):
        if not text:
            return self
        text = self._carry + text
        parts = text.split("\n")
        self._carry = parts.pop()
        for line in parts:
            self.line(line)
        return self

    def finish(self):
        if self._carry:
            self.line(self._carry)
            self._carry = ""
        return self

    def line(self, raw):
        raw = raw.rstrip("\r")
        if not raw.strip():
            return
        self.lines += 1
        self.tail.append(raw[:400])
        text = strip_prefix(raw)
        obj = parse_json_line(text) if "{" in text else None
        if obj is not None:
            self._event(obj)
            return
        if self._rdzv is not None:
            match = RDZV_FIELD_RE.search(text)
            if match:
                self._rdzv[match.group(1)] = int(match.group(2))
                if match.group(1) == "group_world_size":
                    self.joined = {"round": self._rdzv.get("restart_count", 0),
                                   "group_rank": self._rdzv.get("group_rank"), "world": self._rdzv[match.group(1)]}
                    self.restarts = max(self.restarts, self._rdzv.get("restart_count", 0))
                    self._rdzv = None
                return
        if RDZV_DONE_RE.search(text):
            self.attempted = True
            self._rdzv = {}
            return
        if RDZV_START_RE.search(text):
            self.attempted = True
            return
        match = JOINED_RE.search(text)
        if match:
            self.attempted = True
            self.joined = {"round": int(match.group(2)), "group_rank": int(match.group(4)),
                           "world": int(match.group(5))}
            return
        if ATTEMPT_RE.search(text) or TF_ATTEMPT_RE.search(text):
            self.attempted = True
            return
        if RESTART_RE.search(text):
            self.restart_requests += 1
            return
        match = SIGNAL_RE.search(raw)
        if match:
            self.death_signal = self.death_signal or match.group(1)
        if ERROR_RE.search(text):
            self.errors.append(raw[:400])

    def _event(self, obj):
        event = obj.get("event")
        if event == "joined" and isinstance(obj.get("rank"), int):
            self.ranks[obj["rank"]] = obj
            self.attempted = True  # its process runs (a TensorFlow job has no agent lines before it)
            return
        if event == "done":
            self.done = obj
        elif event == "resume":
            self.resume = obj
        elif event == "checkpoint":
            self.last_checkpoint = obj
        if is_step(obj):
            self.last_step = obj
            if self.first_step is None:
                self.first_step = obj
            if self.steps is not None:
                self.steps.append(obj)
        if event not in LIFECYCLE_EVENTS or is_step(obj):
            self.last_metrics = obj

    def world_size(self):
        sizes = [e.get("world_size") for e in self.ranks.values() if isinstance(e.get("world_size"), int)]
        return max(sizes) if sizes else None

    def snapshot(self):
        """A JSON-able digest for the watcher's state file and the report."""
        return {
            "ranks": sorted(self.ranks),
            "restart_events": sorted(set(e.get("restart", 0) for e in self.ranks.values())),
            "world_size": self.world_size(),
            "attempted": self.attempted,
            "joined": self.joined,
            "restarts": self.restarts,
            "restart_requests": self.restart_requests,
            "death_signal": self.death_signal,
            "last_metrics": self.last_metrics,
            "last_step": self.last_step,
            "first_step": self.first_step,
            "done": self.done,
            "resume": self.resume,
            "last_checkpoint": self.last_checkpoint,
            "tail": list(self.tail),
            "errors": list(self.errors),
            "lines": self.lines,
        }


def parse_log(text, keep_steps=True):
    return LogState(keep_steps=keep_steps, tail=40).feed(text).finish()
