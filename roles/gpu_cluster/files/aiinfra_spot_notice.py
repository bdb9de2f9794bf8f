# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The spot notice watcher: run by ``aiinfra-spot-notice.service`` on every spot node (and on local nodes, where a
test plays the cloud), it asks the cloud every few seconds whether the node is about to be taken back, and on the
first notice:

1. records it in ``/run/aiinfra/preempted.json`` (root's, 0644: the run's watch reads it on its next poll and names
   the node *preempted*; a job may read it too, to save a checkpoint at once);
2. tells every checkpoint uploader on the node (``aiinfra-ckpt-*``) to push now (SIGUSR1), rather than at its next
   round, so the newest complete checkpoint is in the object store before the node goes.

Where the notice comes from (``source`` in ``/etc/aiinfra-spot-notice/config.json``):

- ``aws``: IMDSv2 ``/latest/meta-data/spot/instance-action`` (404 until EC2 sets it, then
  ``{"action": "terminate", "time": ...}``, two minutes ahead);
- ``gcp``: the metadata server's ``instance/preempted`` (``TRUE`` once preemption has begun, about 30 s ahead);
- ``azure``: Scheduled Events (``/metadata/scheduledevents``), an event of type ``Preempt`` (30 s or more ahead);
- ``local``: the file ``/run/aiinfra/spot-notice`` appearing (its text is the notice's detail).

The node itself is stopped by its cloud, not by this watcher. Python 3 standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

CONFIG = "/etc/aiinfra-spot-notice/config.json"
RUN_DIR = "/run/aiinfra"
NOTICE = os.path.join(RUN_DIR, "preempted.json")
LOCAL_NOTICE = os.path.join(RUN_DIR, "spot-notice")
UPLOADERS = "aiinfra-ckpt-*.service"
SOURCES = ("aws", "gcp", "azure", "local")


def _get(url, headers, timeout=2.0, method="GET"):
    """``(status, body)``; ``(None, error)`` when the endpoint cannot be reached."""
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec - link-local metadata only
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(exc)


def aws_notice(get=_get, base="http://169.254.169.254"):
    status, token = get(base + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "300"}, method="PUT")
    if status != 200:
        return None
    status, body = get(base + "/latest/meta-data/spot/instance-action", {"X-aws-ec2-metadata-token": token})
    if status != 200 or not body:
        return None
    try:
        action = json.loads(body)
    except ValueError:
        action = {}
    return {"detail": "spot instance-action %s at %s" % (action.get("action", "?"), action.get("time", "?")),
            "action_time": action.get("time")}


def gcp_notice(get=_get, base="http://metadata.google.internal"):
    status, body = get(base + "/computeMetadata/v1/instance/preempted", {"Metadata-Flavor": "Google"})
    if status == 200 and body.strip().upper() == "TRUE":
        return {"detail": "instance/preempted is TRUE", "action_time": None}
    return None


def azure_notice(get=_get, base="http://169.254.169.254"):
    status, body = get(base + "/metadata/scheduledevents?api-version=2020-07-01", {"Metadata": "true"})
    if status != 200 or not body:
        return None
    try:
        events = json.loads(body).get("Events") or []
    except (ValueError, AttributeError):
        return None
    for event in events:
        if isinstance(event, dict) and event.get("EventType") == "Preempt":
            return {"detail": "Scheduled Event Preempt %s (%s), not before %s"
                              % (event.get("EventId", "?"), event.get("EventStatus", "?"), event.get("NotBefore", "?")),
                    "action_time": event.get("NotBefore")}
    return None


def local_notice(path=LOCAL_NOTICE):
    try:
        with open(path, "rb") as handle:
            text = handle.read(4096).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        text = "unreadable: %s" % exc
    return {"detail": "%s appeared%s" % (path, ": " + text if text else ""), "action_time": None}


CHECKS = {"aws": aws_notice, "gcp": gcp_notice, "azure": azure_notice, "local": local_notice}


def record(notice, source, now, path=NOTICE):
    """Write the notice for the watch (atomically, root's, 0644)."""
    body = dict(notice, source=source, time=now)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle)
        handle.write("\n")
    os.rename(tmp, path)
    return body


def push_now(run=subprocess.run):
    """SIGUSR1 to every running checkpoint uploader's main process: push what is complete now."""
    listed = run(["systemctl", "list-units", "--plain", "--no-legend", "--state=active", UPLOADERS], check=False,
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    units = [line.split()[0] for line in (listed.stdout or "").splitlines() if line.strip()]
    if units:
        run(["systemctl", "kill", "--signal=SIGUSR1", "--kill-whom=main"] + units, check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return units


def check_once(source, check, now, path=NOTICE, push=push_now):
    """One look: the notice recorded and the uploaders told, the first time one is seen; the record, or None."""
    if os.path.exists(path):
        return None  # already recorded (the cloud takes the node back; /run starts empty at the next boot)
    notice = check()
    if not notice:
        return None
    body = record(notice, source, now, path)
    units = push()
    print("spot notice (%s): %s; asked %s to push now" % (source, body["detail"], ", ".join(units) or "no uploader"),
          flush=True)
    return body


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config_path = argv[0] if argv else CONFIG
    with open(config_path) as handle:
        config = json.load(handle)
    source = config.get("source")
    if source not in SOURCES:
        sys.stderr.write("aiinfra-spot-notice: unknown source %r (one of %s)\n" % (source, ", ".join(SOURCES)))
        return 2
    interval = max(0.5, float(config.get("interval") or 2))
    # root's, 0755: where the local notice file appears and the record is kept (nobody else may write there)
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    print("watching for a spot notice from %s every %.1f s" % (source, interval), flush=True)
    while True:
        check_once(source, CHECKS[source], time.time())
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
