#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_job_info
short_description: The state of one node's part of a torchrun job, and its log since an offset
version_added: 0.1.0
description:
  - Reads the transient systemd unit of a run started by M(aiinfra.gpu_cluster.torchrun_job), its exit record
    (written when the unit stops) and the part of its log after O(offset).
  - With O(wait) it returns as soon as the unit stops, or after O(wait) seconds (a long poll).
  - With O(probe) it also tries a TCP connection to the rendezvous endpoint, to tell a node that cannot reach
    rank 0 from one that can.
  - Never changes anything.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
options:
  run_id:
    description: The run id.
    type: str
    required: true
  base_dir:
    description: As in M(aiinfra.gpu_cluster.torchrun_job).
    type: path
    default: /var/lib/aiinfra/torchrun
  offset:
    description: Return the log from this byte offset on.
    type: int
    default: 0
  max_bytes:
    description: Return at most this many bytes of log; when more is new, the last O(max_bytes) are returned.
    type: int
    default: 262144
  wait:
    description: Wait up to this many seconds for the unit to stop before answering.
    type: float
    default: 0
  probe:
    description: A C(HOST:PORT) to try a TCP connection to.
    type: str
  probe_timeout:
    description: Seconds the probe may take.
    type: float
    default: 3
seealso:
  - module: aiinfra.gpu_cluster.torchrun_job
"""

EXAMPLES = r"""
- name: Is the run still going, and what did it log?
  aiinfra.gpu_cluster.torchrun_job_info:
    run_id: 20260101-120000-ab12cd
  become: true
  register: job

- name: Show the last lines
  ansible.builtin.debug:
    msg: "{{ job.log_chunk.splitlines()[-5:] }}"
"""

RETURN = r"""
active:
  description: Whether the run's unit is running.
  returned: always
  type: bool
unit_state:
  description: The unit's C(ActiveState/SubState) (C(inactive/dead) once it is gone).
  returned: always
  type: str
started:
  description: Whether the run was ever started on this node.
  returned: always
  type: bool
started_at:
  description: When it was started (epoch seconds).
  returned: when started
  type: float
exit:
  description: How the unit ended (C(result), C(code), C(status), C(time)) as systemd reported it; null while it runs.
  returned: always
  type: dict
log_chunk:
  description: The log from RV(log_start) to RV(log_offset).
  returned: always
  type: str
log_start:
  description: Where RV(log_chunk) begins (larger than O(offset) when bytes were skipped).
  returned: always
  type: int
log_offset:
  description: The offset to ask for next time.
  returned: always
  type: int
log_size:
  description: The log's size in bytes.
  returned: always
  type: int
probe:
  description: The result of O(probe) (C(endpoint), C(ok), C(error)).
  returned: when probe is set
  type: dict
"""

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils.torchrun import (  # noqa: E402
    SpecError, unit_name, validate_run_id)

ACTIVE = ("active", "activating", "deactivating", "reloading")


def unit_state(module, unit):
    rc, out, err = module.run_command(["systemctl", "show", unit, "--property", "ActiveState,SubState"])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props.get("ActiveState", "unknown"), props.get("SubState", "unknown")


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def read_log(path, offset, max_bytes):
    try:
        size = os.path.getsize(path)
    except OSError:
        return "", offset, offset, 0
    if size < offset:  # rotated: a new attempt of the run
        offset = 0
    start = max(offset, size - max_bytes)
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    # hand back whole lines only (the rest comes next time), unless the unit is done writing
    cut = data.rfind(b"\n") + 1
    return data[:cut].decode("utf-8", "replace"), start, start + cut, size


def probe(endpoint, timeout):
    result = {"endpoint": endpoint, "ok": False, "error": None}
    try:
        host, port = endpoint.rsplit(":", 1)
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        conn.close()
        result["ok"] = True
    except (OSError, ValueError) as exc:
        result["error"] = str(exc) or exc.__class__.__name__
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_id=dict(type="str", required=True),
            base_dir=dict(type="path", default="/var/lib/aiinfra/torchrun"),
            offset=dict(type="int", default=0),
            max_bytes=dict(type="int", default=262144),
            wait=dict(type="float", default=0),
            probe=dict(type="str"),
            probe_timeout=dict(type="float", default=3),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        validate_run_id(params["run_id"])
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    run_dir = os.path.join(params["base_dir"], "runs", params["run_id"])
    unit = unit_name(params["run_id"])
    deadline = time.time() + max(0.0, params["wait"])
    while True:
        active, sub = unit_state(module, unit)
        if active not in ACTIVE or time.time() >= deadline:
            break
        time.sleep(0.25)
    meta = read_json(os.path.join(run_dir, "meta.json")) or {}
    exit_info = read_json(os.path.join(run_dir, "exit.json")) if active not in ACTIVE else None
    chunk, start, offset, size = read_log(os.path.join(run_dir, "torchrun.log"), params["offset"],
                                          params["max_bytes"])
    result = dict(changed=False, active=active in ACTIVE, unit_state="%s/%s" % (active, sub),
                  started=bool(meta), exit=exit_info, log_chunk=chunk, log_start=start, log_offset=offset,
                  log_size=size, unit=unit)
    if meta:
        result["started_at"] = meta.get("started_at")
    if params["probe"]:
        result["probe"] = probe(params["probe"], params["probe_timeout"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
