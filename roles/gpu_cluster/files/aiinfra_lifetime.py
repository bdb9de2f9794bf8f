# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No forgotten cluster: run by ``aiinfra-lifetime.timer`` on every node, it powers the node off when its time to
live is up or when it has been idle long enough (on aws such a shutdown terminates the instance). On azure, where a
power-off leaves the VM allocated and billed, the VM deallocates itself instead: a token for its system-assigned
managed identity from the instance metadata service, then Resource Manager's ``deallocate`` on its own resource id
(the identity has a role on the VM itself, given when the VM was made). When that fails, it powers off after all
and says why.

Config (``/etc/aiinfra-lifetime/config.json``, written by the gpu_cluster role's ``lifetime.yml``):
``deadline`` (ISO 8601 UTC, the node's launch + TTL as the cloud reports it; empty: none), ``ttl_seconds`` (a
deadline counted from the first check when the cloud gave none), ``idle_seconds`` (0: never idle-stopped),
``gpu_percent`` (a GPU at or above it is busy), ``unit_prefix`` (the job units: ``aiinfra-torchrun-``),
``azure_deallocate`` (stop by deallocating through the VM's identity), ``arm_url`` (Resource Manager's root, the
token's resource), ``imds_url`` (the instance metadata service; a test's stand-in).

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
import urllib.error
import urllib.parse
import urllib.request

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
        new.pop("deallocate_requested", None)  # started again after a deallocation: a stop asks afresh
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


IMDS_URL = "http://169.254.169.254"
ARM_URL = "https://management.azure.com"
# the API versions of the instance metadata service's compute document, its managed-identity token, and Compute's
# virtualMachines/deallocate
IMDS_COMPUTE_API = "2021-02-01"
IMDS_TOKEN_API = "2018-02-01"
COMPUTE_API = "2024-07-01"
# a deallocation asked for is awaited this long (the timer keeps running meanwhile) before a power-off
DEALLOCATE_GRACE = 600


def _truthy(value):
    return value is True or str(value).strip().lower() in ("true", "yes", "on", "1")


def _json(request, opener, timeout=10):
    with opener(request, timeout=timeout) as answer:
        body = answer.read()
        return answer.status, (json.loads(body.decode("utf-8")) if body.strip() else None)


def azure_deallocate(config, opener=None):
    """Ask Resource Manager to deallocate this VM, as the VM's own identity: ``(ok, what happened)``.

    The instance metadata service (header ``Metadata: true``; never through a proxy) gives the VM's resource id and a
    token for its system-assigned identity; then ``POST <id>/deallocate`` with it (202 Accepted: Azure shuts the VM
    down and frees its hardware)."""
    imds = (config.get("imds_url") or IMDS_URL).rstrip("/")
    arm = (config.get("arm_url") or ARM_URL).rstrip("/")
    meta = {"Metadata": "true"}
    # the metadata service answers only direct requests (no proxy, whatever the environment says)
    local = opener or urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    opener = opener or urllib.request.urlopen
    try:
        _status, compute = _json(urllib.request.Request(
            "%s/metadata/instance/compute?api-version=%s" % (imds, IMDS_COMPUTE_API), headers=meta), local)
        vm_id = (compute or {}).get("resourceId")
        if not vm_id:
            return False, "the instance metadata service gave no resourceId"
        _status, token = _json(urllib.request.Request("%s/metadata/identity/oauth2/token?%s" % (
            imds, urllib.parse.urlencode({"api-version": IMDS_TOKEN_API, "resource": arm + "/"})), headers=meta),
            local)
        access = (token or {}).get("access_token")
        if not access:
            return False, "the instance metadata service gave no token for the VM's identity"
        status, _body = _json(urllib.request.Request(
            "%s%s/deallocate?api-version=%s" % (arm, vm_id, COMPUTE_API), data=b"", method="POST",
            headers={"Authorization": "Bearer " + access, "Content-Type": "application/json"}), opener, timeout=60)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        return False, "HTTP %s from %s: %s" % (exc.code, exc.url.split("?")[0], " ".join(detail.split()))
    except (OSError, ValueError) as exc:  # URLError, a timeout, a body that is not JSON
        return False, "%s: %s" % (type(exc).__name__, exc)
    return True, "deallocation of %s accepted (HTTP %s)" % (vm_id, status)


def stop(config, state, opener=None, now=None):
    """How to stop the node now: ``(power_off, what)``. On azure (``azure_deallocate``) its deallocation is asked
    for, once; a power-off only when that failed or did not happen within ``DEALLOCATE_GRACE``. Elsewhere a
    power-off. Updates ``state``."""
    now = time.time() if now is None else now
    if not _truthy(config.get("azure_deallocate")):
        return True, "powering off"
    asked = state.get("deallocate_requested")
    if asked and now - float(asked) < DEALLOCATE_GRACE:
        return False, "deallocation asked for %d s ago; waiting for Azure" % (now - float(asked))
    if asked:
        return True, "not deallocated %d s after asking; powering off" % (now - float(asked))
    ok, what = azure_deallocate(config, opener)
    if ok:
        state["deallocate_requested"] = now
        return False, what
    state["deallocate_error"] = what
    return True, "deallocation failed (%s); powering off instead - Azure bills the VM until teardown" % what


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
    save_state(state)
    print("aiinfra-lifetime: %s - %s" % (action, reason))
    if action == "stop":
        # the reason first (a new file at this boot's first stop), then what was done about it
        first = not state.get("deallocate_requested")
        power_off, done = stop(config, state)
        save_state(state)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(os.path.join(STATE_DIR, "stopped"), "w" if first else "a") as handle:
            if first:
                handle.write("%s %s\n" % (stamp, reason))
            handle.write("%s %s\n" % (stamp, done))
        print("aiinfra-lifetime: %s" % done)
        sys.stdout.flush()
        if power_off:
            subprocess.run(["systemctl", "poweroff"], check=False)
    return 0


def save_state(state):
    with open(STATE + ".tmp", "w") as handle:
        json.dump(state, handle)
    os.replace(STATE + ".tmp", STATE)


if __name__ == "__main__":
    sys.exit(main())
