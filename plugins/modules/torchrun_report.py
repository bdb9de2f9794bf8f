#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: torchrun_report
short_description: The report of a torchrun run, from the watch's verdict and the fetched logs
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin). Takes the result of M(aiinfra.gpu_cluster.torchrun_watch) (O(watch))
    and the node logs fetched to C(RUN_DIR/HOST/torchrun.log), and writes C(summary.json) (per node rank, exit code,
    duration, last metrics and log tail; the loss curve; the aggregated exit code), C(summary.txt) and C(loss.png)
    (loss per step, with matplotlib).
  - Exit codes are aggregated over nodes; a node whose torchrun exits 0 after a peer failed does not make the run a
    success.
  - Shows the summary, and fails when the run failed, naming the node and rank that failed first with the tail of
    its log.
author:
  - aiinfra platform team (@aiinfra)
attributes:
  check_mode:
    support: none
    description: Reports on a run that happened.
  diff_mode:
    support: none
    description: Not applicable.
  action:
    support: full
    description: Runs on the controller.
options:
  run_id:
    description: The run id.
    type: str
    required: true
  job:
    description: The job name, for the report.
    type: str
    default: ""
  run_dir:
    description: The run directory on the controller.
    type: str
    required: true
  hosts:
    description: Every node of the job with its node rank.
    type: dict
    required: true
  addresses:
    description: Each node's private address, for the report.
    type: dict
    default: {}
  watch:
    description: The result of M(aiinfra.gpu_cluster.torchrun_watch) (its C(verdict) and every node's last state).
    type: dict
    default: {}
  started:
    description: When the run was launched (epoch seconds), as given to M(aiinfra.gpu_cluster.torchrun_watch).
    type: float
    required: true
  rdzv_endpoint:
    description: The rendezvous endpoint, for the report.
    type: str
    default: ""
  framework:
    description: The job's framework (C(pytorch), or C(tensorflow) - a TensorFlow job launched by the torchrun role).
    type: str
    default: pytorch
  plot:
    description: Whether to draw C(loss.png) (needs matplotlib on the controller; skipped with a warning otherwise).
    type: bool
    default: true
  unstopped:
    description: Nodes the job could not be stopped on (unreachable), named in the failure message.
    type: list
    elements: str
    default: []
  stops:
    description: Each node's M(aiinfra.gpu_cluster.torchrun_job) C(state=stopped) result, when the job was stopped.
    type: dict
    default: {}
  show:
    description:
      - Whether to print the summary of a run that succeeded (a failed run's is always printed). C(train.yml) prints
        it as its last task instead, right before PLAY RECAP.
    type: bool
    default: true
  utilisation:
    description:
      - Prometheus' answers for the nodes' CPU, memory and GPU utilisation over the run (C(cpu), C(memory), C(gpu),
        each the JSON of C(/api/v1/query_range); or C(all), the one answer of the combined query, each series
        labelled C(aiinfra_panel) with its panel), as the monitoring role's C(query.yml) asks them. Given, the
        summary gets C(utilisation) (per node mean and max, C(no GPU) where there is none) and C(loss.png) three
        panels; points outside the run's window are left out.
    type: dict
  prices:
    description:
      - Each node's price (C(gpu_cluster_price), from C(data/prices.yml)) and launch time (C(gpu_cluster_launch_time)),
        keyed by host, each with C(price) and C(launch_time). Given, the summary gets C(cost) - node-hours and the estimated cost of
        the run's window (C(run)) and of the cluster from its nodes' launch to the run's end (C(cluster)).
    type: dict
  attempts:
    description:
      - The job's earlier attempts (the torchrun role's C(torchrun_max_recoveries) - lost nodes replaced, the job run
        again), each as the summary's C(attempts) entries hold them (C(run_id), C(status), C(started), C(ended),
        C(running_at), C(lost), C(recovery) with C(detected), C(replaced), C(configured)).
      - The summary gets C(attempts) (these and this run, last) and C(recoveries) (the timeline of each recovery);
        with more than one attempt the readable summary lists them.
    type: list
    elements: dict
    default: []
  max_recoveries:
    description: C(torchrun_max_recoveries), shown beside the attempts.
    type: int
  health:
    description:
      - The health gate's record of the cluster before the job (the role aiinfra.gpu_cluster.gpu_cluster's
        C(gpu_cluster_health_report) - C(passed), C(failed), C(replaced), C(nodes) with each node's status, reasons
        and figures). Given, the summary gets C(health) and the readable summary a line of it.
    type: dict
  checkpoints:
    description:
      - With C(torchrun_checkpoint_uri), C(uri) and C(nodes) (per host C(restore), the
        M(aiinfra.gpu_cluster.object_sync) result of the restore before the launch; C(upload), the uploader's
        report; C(uploader), its unit's state), as the P(aiinfra.gpu_cluster.torchrun_checkpoints#filter) filter
        gathers them. Given, the summary gets C(checkpoints) (files and bytes restored and uploaded, every corrupt
        object skipped on restore, whether every node's last push finished) and the report a line on them; a corrupt
        object is also a warning.
    type: dict
  outputs:
    description:
      - Where each node's outputs (what the job wrote into C(AIINFRA_OUTPUT_DIR)) were brought on the controller,
        keyed by host; the summary lists them as C(outputs).
    type: dict
    default: {}
  report_uri:
    description:
      - Object storage (C(s3://BUCKET/PREFIX)) that receives the whole run directory (logs, C(summary.json),
        C(summary.txt), C(loss.png), outputs) under C(<report_uri>/<run id>/) once the report is written, from the
        controller, whatever the run's status. An AWX job's controller is its execution environment, which is
        removed with the job; this is where its report outlives it. Empty - the run directory stays on the controller.
      - The summary carries the destination as C(report_uri); a run that succeeded but could not be uploaded fails.
    type: str
    default: ""
  storage_options:
    description:
      - The object store's connection for O(report_uri), as C(gpu_cluster_storage_options) (C(endpoint_url),
        C(region), C(access_key), C(secret_key), C(session_token)); unset keys are left to boto3's own lookup
        (environment, e.g. the AWS credential AWX injects, or an instance profile).
    type: dict
    default: {}
seealso:
  - module: aiinfra.gpu_cluster.torchrun_watch
"""

EXAMPLES = r"""
- name: Write the run report
  aiinfra.gpu_cluster.torchrun_report:
    run_id: "{{ run_id }}"
    run_dir: "runs/{{ run_id }}"
    hosts: {node-0: 0, node-1: 1}
    started: "{{ launched_at }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
summary:
  description: What C(summary.json) holds.
  returned: always
  type: dict
  contains:
    status:
      description: C(succeeded) or C(failed).
      type: str
    exit_code:
      description: The aggregated exit code (0 only when every node exited 0).
      type: int
    world_size:
      description: Processes over all nodes.
      type: int
    nodes:
      description: Per node, C(host), C(node_rank), C(exit_code), C(phase), C(duration_s), C(last_metrics), C(log).
      type: list
      elements: dict
    metrics:
      description: C(first_loss), C(last_loss), C(loss_went_down), C(first_step), C(last_step) ...
      type: dict
    utilisation:
      description: With O(utilisation), C(window) (the run's start and end), C(nodes) (per node C(cpu_mean),
        C(cpu_max), C(memory_mean), C(memory_max), C(gpu_mean), C(gpu_max), or C(gpu) = C(no GPU)) and C(panels).
      type: dict
    checkpoints:
      description: With O(checkpoints), C(uri), C(restored_files), C(restored_bytes), C(corrupt) (C(host), C(key),
        C(path), C(reason)), C(uploaded_files), C(uploaded_bytes), C(upload_errors), C(final_push) and C(nodes)
        (the same per host, with C(uploaded_keys)).
      type: dict
    report_uri:
      description: With O(report_uri), C(<report_uri>/<run id>/).
      type: str
    cost:
      description: With O(prices), C(run) and C(cluster), each C(node_hours), C(cost) (null when a price is
        unknown), C(currency), C(text).
      type: dict
    attempts:
      description: Every attempt of the job, this run last - C(run_id), C(status), C(reason), C(message), C(started),
        C(ended), C(running_at) (every node joined the rendezvous), C(first_step_at), C(last_step), C(resumed_from_step),
        C(lost) (C(host), C(rank), C(node_id), C(reason)) and, for an attempt followed by a recovery, C(recovery)
        (C(detected), C(replaced), C(configured) - Unix times).
      type: list
      elements: dict
    recoveries:
      description: One per recovery - C(after_run), C(run_id) (the next attempt), C(lost), C(detected), and the seconds
        from the loss being detected to the nodes replaced (C(replaced_s)), configured (C(configured_s)), the job
        relaunched (C(relaunched_s)), running again (C(running_again_s)) and its first step (C(first_step_s)).
      type: list
      elements: dict
summary_text:
  description: The readable summary.
  returned: always
  type: str
summary_path:
  description: Where C(summary.json) was written.
  returned: always
  type: str
run_dir:
  description: The run directory (absolute).
  returned: always
  type: str
report_uri:
  description: Where the run directory was uploaded (C(<report_uri>/<run id>/)); empty without O(report_uri).
  returned: always
  type: str
report_upload:
  description: With O(report_uri), C(uri), C(files) (files stored), C(bytes) (uploaded now) and C(error) (null when
    every file is stored).
  returned: when O(report_uri) is set
  type: dict
"""
