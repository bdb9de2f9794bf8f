#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_health
short_description: One node's part of the health gate - driver, GPUs, kernel log, DCGM, bandwidth
version_added: 0.1.0
description:
  - With O(mode=node), checks this node - the driver answers (C(nvidia-smi)), the GPU count and model are the expected
    ones (O(expected_gpus), O(expected_model); else the NVIDIA GPUs on the PCI bus), no Xid and no uncorrectable ECC
    error since boot (the kernel log, C(journalctl -k -b) or C(dmesg); nvidia-smi's volatile uncorrectable ECC
    counters), C(dcgmi diag -r 1) where DCGM is installed, and the node's own all-reduce bus bandwidth across its
    GPUs (NCCL, one process per GPU, as nccl-tests' C(all_reduce_perf) counts it).
  - On a node without NVIDIA GPUs (a CPU node) the GPU checks are C(not applicable), not passed.
  - With O(mode=pairs), measures this node against others, in the rounds of O(schedule) (each round pairs of nodes
    that do not overlap) - a 2-rank all-reduce, NCCL on GPU nodes and gloo on CPU nodes (the PyTorch virtualenv,
    O(python)), or a plain TCP exchange of O(bytes) each way with O(method=tcp) or where the node has no torch. Every
    node of the schedule runs this at the same time (the gate starts it with C(async)); the controller decides which
    node is slow from all the figures (the filter aiinfra.gpu_cluster.health_verdict).
  - Writes nothing; the measurements use the bench script O(bench) (the role aiinfra.gpu_cluster.gpu_cluster installs
    it, C(tasks_from=health.yml)).
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: full
    description: Runs nothing; returns what would be run (RV(planned)).
  diff_mode:
    support: none
    description: Not applicable.
options:
  mode:
    description: C(node) - the node's own checks; C(pairs) - the bandwidth against other nodes.
    type: str
    choices: [node, pairs]
    default: node
  expected_gpus:
    description: The node's GPU count by its instance type (C(data/health.yml)); 0 - the NVIDIA GPUs on the PCI bus.
    type: int
    default: 0
  expected_model:
    description: A part of the GPU name every GPU must have (e.g. C(H100)); empty - any model.
    type: str
    default: ""
  kernel_log:
    description: Check the kernel log since boot for Xid and uncorrectable ECC errors.
    type: bool
    default: true
  dcgm:
    description: Run C(dcgmi diag -r 1) where C(dcgmi) is installed.
    type: bool
    default: true
  allreduce:
    description: Measure the all-reduce across this node's GPUs (2 GPUs or more).
    type: bool
    default: true
  python:
    description: The Python with torch (the pytorch role's virtualenv); missing, C(python3) runs the bench.
    type: path
    default: /opt/aiinfra/pytorch/bin/python
  bench:
    description: The bench script on the node.
    type: path
    default: /usr/local/lib/aiinfra-health/aiinfra_health_bench.py
  method:
    description: O(mode=pairs) - C(auto) (NCCL with GPUs, gloo without, TCP without torch), C(nccl), C(gloo) or C(tcp).
    type: str
    choices: [auto, nccl, gloo, tcp]
    default: auto
  bytes:
    description:
      - The all-reduce's size (and the TCP exchange's, each way), in bytes.
      - 0 - 256 MiB with NCCL (inside the node, and pairs of GPU nodes), 8 MiB with gloo or TCP (a slow link still
        moves it in seconds).
    type: int
    default: 0
  iters:
    description: Timed all-reduces (after one warm-up).
    type: int
    default: 5
  port:
    description: O(mode=pairs) - the first TCP port; round N uses O(port) + N (the lower node of a pair listens).
    type: int
    default: 29450
  timeout:
    description: Seconds a round (or the node's all-reduce) may take, waiting for the partner included.
    type: int
    default: 180
  me:
    description: O(mode=pairs) - this node's name in O(schedule).
    type: str
    default: ""
  schedule:
    description: O(mode=pairs) - the rounds, each a list of C([node, node]) pairs.
    type: list
    elements: raw
    default: []
  addresses:
    description: O(mode=pairs) - each node's address the others reach it at.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The node's own checks
  aiinfra.gpu_cluster.node_health:
    expected_gpus: 8
    expected_model: H100
  become: true

- name: This node against the others (started on every node at once)
  aiinfra.gpu_cluster.node_health:
    mode: pairs
    me: "{{ inventory_hostname }}"
    schedule: "{{ schedule }}"
    addresses: "{{ addresses }}"
  async: 900
  poll: 0
"""

RETURN = r"""
status:
  description: C(failed) when a check failed, else C(passed) (O(mode=node)).
  returned: always
  type: str
checks:
  description: Each check - C(name), C(status) (C(passed), C(failed), C(warning), C(not applicable)), C(detail), C(figures).
  returned: always
  type: list
  elements: dict
gpus:
  description: The NVIDIA GPUs on the PCI bus (slots).
  returned: O(mode=node)
  type: list
  elements: str
local:
  description: The bench's all-reduce inside the node (C(busbw_gbs), C(gpus), C(bytes), C(seconds)) or why not.
  returned: O(mode=node)
  type: dict
pairs:
  description: The pair figures of this node - C(round), C(pair), C(peer), C(method), C(busbw_gbs) (or C(error)).
  returned: O(mode=pairs)
  type: list
  elements: dict
method:
  description: The method the pairs used.
  returned: O(mode=pairs)
  type: str
planned:
  description: The commands that would run (check mode).
  returned: check mode
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import health


def bench_python(module):
    python = module.params["python"]
    if python and os.access(python, os.X_OK):
        return python
    return module.get_bin_path("python3", required=True)


def run_bench(module, argv, timeout):
    if not os.path.exists(module.params["bench"]):
        return {"error": "the bench script %s is not on the node" % module.params["bench"]}
    cmd = [bench_python(module), module.params["bench"]] + argv
    rc, out, err = module.run_command(["timeout", str(int(timeout))] + cmd)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        return {"error": "the bench failed (rc %s): %s" % (rc, (err or out).strip()[-600:])}
    return json.loads(lines[-1])


def common_args(params):
    return ["--bytes", str(params["bytes"]), "--iters", str(params["iters"]), "--timeout", str(params["timeout"])]


def node_checks(module):
    params = module.params
    gpus = health.pci_gpus()
    smi = module.get_bin_path("nvidia-smi")
    if smi:
        rc, out, err = module.run_command([smi, "--query-gpu=" + ",".join(health.SMI_FIELDS),
                                           "--format=csv,noheader,nounits"])
    else:
        rc, out, err = None, "", ""
    checks = health.gpu_checks(rc, out, err, len(gpus), params["expected_gpus"] or None, params["expected_model"])
    has_gpus = bool(gpus or params["expected_gpus"])
    if params["kernel_log"]:
        journalctl = module.get_bin_path("journalctl")
        source, text = "journalctl -k -b", ""
        if journalctl:
            rc_k, text, dummy = module.run_command([journalctl, "-k", "-b", "--no-pager", "-q", "-o", "short"])
            if rc_k != 0:
                text = ""
        if not text:
            dmesg = module.get_bin_path("dmesg")
            source = "dmesg"
            if dmesg:
                rc_k, text, dummy = module.run_command([dmesg])
                if rc_k != 0:
                    source = "no kernel log readable (dmesg rc %s)" % rc_k
        checks.append(health.kernel_log_check(text, source))
    if has_gpus and params["dcgm"]:
        dcgmi = module.get_bin_path("dcgmi")
        rc_d, out_d, err_d = module.run_command([dcgmi, "diag", "-r", "1"]) if dcgmi else (None, "", "")
        checks.append(health.dcgm_check(bool(dcgmi), rc_d, out_d, err_d))
    else:
        checks.append(health.check("dcgm diag", health.NA, "no GPU" if not has_gpus else "not asked for"))
    local = None
    if not has_gpus:
        checks.append(health.check("nvlink all-reduce", health.NA, "no GPU"))
    elif not params["allreduce"]:
        checks.append(health.check("nvlink all-reduce", health.NA, "not asked for"))
    else:
        local = run_bench(module, ["local", "--port", str(params["port"])] + common_args(params),
                          params["timeout"] + 30)
        checks.append(health.local_allreduce_check(local))
    return {"status": health.overall(checks), "checks": checks, "gpus": gpus, "local": local or {}}


def pair_checks(module):
    params = module.params
    argv = ["pairs", "--me", params["me"], "--schedule", json.dumps(params["schedule"]), "--addresses",
            json.dumps(params["addresses"]), "--method", params["method"], "--port", str(params["port"])]
    rounds = sum(1 for pairs in params["schedule"] if any(params["me"] in p for p in pairs))
    result = run_bench(module, argv + common_args(params), params["timeout"] * max(1, len(params["schedule"])) + 60)
    if result.get("error"):
        return {"status": health.FAILED, "checks": [health.check("pairs", health.FAILED, result["error"])],
                "pairs": [], "method": params["method"]}
    broken = [p for p in result["pairs"] if p.get("error")]
    status = health.FAILED if broken else health.PASSED
    detail = "%d pair(s) in %d round(s)%s" % (len(result["pairs"]), rounds, "; failed: " + "; ".join(
        "%s: %s" % (p["peer"], p["error"]) for p in broken) if broken else "")
    return {"status": status, "checks": [health.check("pairs", status, detail)], "pairs": result["pairs"],
            "method": result.get("method")}


def main():
    module = AnsibleModule(argument_spec=dict(
        mode=dict(type="str", choices=["node", "pairs"], default="node"),
        expected_gpus=dict(type="int", default=0),
        expected_model=dict(type="str", default=""),
        kernel_log=dict(type="bool", default=True),
        dcgm=dict(type="bool", default=True),
        allreduce=dict(type="bool", default=True),
        python=dict(type="path", default="/opt/aiinfra/pytorch/bin/python"),
        bench=dict(type="path", default="/usr/local/lib/aiinfra-health/aiinfra_health_bench.py"),
        method=dict(type="str", choices=["auto", "nccl", "gloo", "tcp"], default="auto"),
        bytes=dict(type="int", default=0),
        iters=dict(type="int", default=5),
        port=dict(type="int", default=29450),
        timeout=dict(type="int", default=180),
        me=dict(type="str", default=""),
        schedule=dict(type="list", elements="raw", default=[]),
        addresses=dict(type="dict", default={}),
    ), supports_check_mode=True)
    if module.check_mode:
        what = ["nvidia-smi", "journalctl -k -b", "dcgmi diag -r 1", "bench local"] \
            if module.params["mode"] == "node" else ["bench pairs (%s)" % module.params["method"]]
        module.exit_json(changed=False, status="skipped", checks=[], planned=what)
    result = node_checks(module) if module.params["mode"] == "node" else pair_checks(module)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
