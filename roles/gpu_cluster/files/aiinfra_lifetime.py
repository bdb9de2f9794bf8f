# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No forgotten cluster: run by ``aiinfra-lifetime.timer`` on every node, it powers the node off when its time to
live is up or when it has been idle long enough (on aws such a shutdown terminates the instance).

Config (``/etc/aiinfra-lifetime/config.json``, written by the gpu_cluster role's ``lifetime.yml``):
``deadline`` (ISO 8601 UTC, the node's launch + TTL as the cloud reports it; empty: none), ``ttl_seconds`` (a
deadline counted from the first check when the cloud gave none), ``idle_seconds`` (0: never idle-stopped),
``gpu_percent`` (a GPU at or above it is busy), ``unit_prefix`` (the job units: ``aiinfra-torchrun-``).

Busy means a job unit is active, or a GPU is at or above ``gpu_percent``; idle is neither, and the idle time counts
from the last busy check (or this boot, or the timer's start, whichever is latest). The state
(``/var/lib/aiinfra-lifetime/state.json``) keeps the last busy time and the boot it was seen in.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

CONFIG = "/etc/aiinfra-lifetime/config.json"
STATE_DIR = "/var/lib/aiinfra-lifetime"
STATE = os.path.join(STATE_DIR, "state.json")
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def parse_deadline(text):
    """``2026-12-01T08:40:01Z`` -> Unix time; ``None`` for empty or unreadable text."""
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def decide(now, config, state, boot_id, busy):
    """What to do now: ``(action, reason, new_state)``, ``action`` ``stop`` or ``keep``.

    ``state``: the previous check's (``{}`` at the first); ``busy``: ``None`` when idle, else what keeps the node
    busy (a job unit, a GPU's utilisation)."""
    new = dict(state)
    if new.get("boot_id") != boot_id:
        # a new boot (or the first check): the idle clock starts again; a deadline stays
        new.update(boot_id=boot_id, last_busy=now, busy="booted")
    deadline = parse_deadline(config.get("deadline"))
    if deadline is None and config.get("ttl_seconds"):
        deadline = new.setdefault("deadline", now + float(config["ttl_seconds"]))
    if deadline is not None and now >= deadline:
        return "stop", "time to live reached (deadline %s)" % time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline)), new
    if busy:
        new.update(last_busy=now, busy=busy)
        return "keep", "busy: %s" % busy, new
    idle_seconds = float(config.get("idle_seconds") or 0)
    idle_for = now - float(new.get("last_busy", now))
    if idle_seconds and idle_for >= idle_seconds:
        return "stop", "idle for %d s (limit %d s; last busy: %s)" % (idle_for, idle_seconds, new.get("busy")), new
    return "keep", "idle for %d s of %s" % (idle_for, "%d s" % idle_seconds if idle_seconds else "no limit"), new


def busy_now(config, run=subprocess.run):
    """What keeps the node busy now (text), or ``None``: an active job unit, else a GPU at or above the threshold."""
    prefix = config.get("unit_prefix") or "aiinfra-torchrun-"
    units = run(["systemctl", "list-units", "--type=service", "--state=active", "--no-legend", "--plain",
                 prefix + "*"], capture_output=True, text=True, check=False)
    active = [line.split()[0] for line in units.stdout.splitlines() if line.strip()]
    if active:
        return "job unit %s active" % ", ".join(active)
    try:
        gpus = run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                   capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None  # no GPUs (a CPU node): the job units decide
    if gpus.returncode != 0:
        return None
    threshold = float(config.get("gpu_percent", 5))
    used = [float(v) for v in gpus.stdout.split() if v.replace(".", "", 1).isdigit()]
    hot = [v for v in used if v >= threshold]
    if hot:
        return "GPU utilisation %s%% (threshold %d%%)" % ("/".join("%d" % v for v in used), threshold)
    return None


def main():
    with open(CONFIG) as handle:
        config = json.load(handle)
    try:
        with open(STATE) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    with open(BOOT_ID) as handle:
        boot_id = handle.read().strip()
    action, reason, state = decide(time.time(), config, state, boot_id, busy_now(config))
    os.makedirs(STATE_DIR, exist_ok=True)
    state["last_check"] = time.time()
    state["last_reason"] = reason
    with open(STATE + ".tmp", "w") as handle:
        json.dump(state, handle)
    os.replace(STATE + ".tmp", STATE)
    print("aiinfra-lifetime: %s - %s" % (action, reason))
    if action == "stop":
        with open(os.path.join(STATE_DIR, "stopped"), "w") as handle:
            handle.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), reason))
        sys.stdout.flush()
        subprocess.run(["systemctl", "poweroff"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
