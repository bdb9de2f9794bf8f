#!/usr/bin/env python
"""Provision the same 8-node a3-highgpu-8g cluster with our modules and with google.cloud, side by side.

Both sides run through ansible-playbook against the same Compute API double (tests/integration/gce_double.py),
which counts every API call. Ours talks to it through endpoint_url; google.cloud has no endpoint option, so the
double also serves HTTPS for compute.googleapis.com / www.googleapis.com with a local CA and the peer is routed
through it as a proxy (HTTPS_PROXY + REQUESTS_CA_BUNDLE). Both authenticate with the same service-account key
file (its token_uri is the double's; token requests are not counted as API calls).

  ours:         aiinfra.gpu_cluster.firewall + aiinfra.gpu_cluster.instance (count 8, wait)
  google.cloud: gcp_compute_firewall x 2 (SSH from the admin network, all between tagged nodes)
                + gcp_compute_instance x 8 (a loop; scheduling.on_host_maintenance TERMINATE set by hand, or the
                  API refuses GPU VMs)

Operations take the double's default times (PENDING 0.05 s, RUNNING 0.25 s), or --op-seconds. Prints wall time and
API calls for the first run and the unchanged re-run, and the ratios. Prints; does not assert.

  .venv/bin/python benchmarks/bench_gcp.py
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from gce_double import ComputeDouble, make_tls, service_account_file  # noqa: E402  pylint: disable=wrong-import-position

VENV_BIN = os.path.dirname(sys.executable)
COUNT = 8
TYPE = "a3-highgpu-8g"
ZONE = "us-central1-a"
IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
ADMIN = "198.51.100.0/24"

OURS = """
- name: Cluster with aiinfra.gpu_cluster
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/aiinfra.gpu_cluster.cloud:
      cloud: gcp
      credentials_file: "{{ sa_file }}"
      endpoint_url: "{{ endpoint }}"
  tasks:
    - name: Firewall
      aiinfra.gpu_cluster.firewall:
        cluster: "{{ cluster }}"
        admin_cidrs: ["{{ admin }}"]
    - name: Nodes
      aiinfra.gpu_cluster.instance:
        cluster: "{{ cluster }}"
        count: %(count)d
        instance_type: %(type)s
        image: %(image)s
        placements: [{zone: %(zone)s}]
        root_volume_size: 200
        ssh_public_key: "{{ pubkey }}"
        wait: true
""" % {"count": COUNT, "type": TYPE, "image": IMAGE, "zone": ZONE}

PEER = """
- name: Cluster with google.cloud
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/google.cloud.gcp:
      project: "{{ project }}"
      auth_kind: serviceaccount
      service_account_file: "{{ sa_file }}"
  tasks:
    - name: Firewall, SSH from the admin network
      google.cloud.gcp_compute_firewall:
        name: "{{ cluster }}-ssh"
        network: {selfLink: "projects/{{ project }}/global/networks/default"}
        allowed: [{ip_protocol: tcp, ports: ["22"]}]
        source_ranges: ["{{ admin }}"]
        target_tags: ["{{ cluster }}"]
    - name: Firewall, everything between the nodes
      google.cloud.gcp_compute_firewall:
        name: "{{ cluster }}-internal"
        network: {selfLink: "projects/{{ project }}/global/networks/default"}
        allowed: [{ip_protocol: all}]
        source_tags: ["{{ cluster }}"]
        target_tags: ["{{ cluster }}"]
    - name: Nodes, one task call each
      google.cloud.gcp_compute_instance:
        name: "{{ cluster }}-{{ item }}"
        zone: %(zone)s
        machine_type: %(type)s
        disks:
          - auto_delete: true
            boot: true
            initialize_params: {source_image: %(image)s, disk_size_gb: 200}
        network_interfaces:
          - network: {selfLink: "projects/{{ project }}/global/networks/default"}
            access_configs: [{name: External NAT, type: ONE_TO_ONE_NAT}]
        scheduling: {on_host_maintenance: TERMINATE, automatic_restart: true}
        metadata: {ssh-keys: "gpuadmin:{{ pubkey }}"}
        labels: {cluster: "{{ cluster }}", rank: "r{{ item }}"}
        tags: {items: ["{{ cluster }}"]}
        state: present
      loop: "{{ range(%(count)d) | list }}"
""" % {"count": COUNT, "type": TYPE, "image": IMAGE, "zone": ZONE}


def run(playbook, variables, env):
    start = time.monotonic()
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", playbook,
                           "-e", json.dumps(variables)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit("%s failed (rc=%d)" % (playbook, proc.returncode))
    return elapsed


def measure(double, playbook, variables, env):
    out = []
    for _attempt in ("first", "re-run"):
        del double.log[:]
        wall = run(playbook, variables, env)
        out.append((wall, len(double.log), dict(collections.Counter(e["id"].split(".", 1)[1] for e in double.log))))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--op-seconds", type=float, default=None,
                        help="how long each operation stays RUNNING in the double (default 0.25)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-gcp-")
    certfile, keyfile, cafile = make_tls(work)
    double = ComputeDouble(tls=(certfile, keyfile))
    if args.op_seconds is not None:
        double.running_s = args.op_seconds
    try:
        sa_file = service_account_file(os.path.join(work, "sa.json"), double)
        with open(os.path.join(ROOT, ".ssh", "id_ed25519.pub")) as handle:
            pubkey = handle.read().strip()
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), NO_GCE_CHECK="True",
                   CLOUDSDK_CONFIG=os.path.join(work, "gcloud"), PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        for name in ("GPU_CLUSTER_NAME", "GOOGLE_APPLICATION_CREDENTIALS", "GCP_SERVICE_ACCOUNT_FILE", "GCP_PROJECT",
                     "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        peer_env = dict(env, HTTPS_PROXY="http://127.0.0.1:%d" % double.port,
                        https_proxy="http://127.0.0.1:%d" % double.port, NO_PROXY="127.0.0.1,localhost",
                        no_proxy="127.0.0.1,localhost", REQUESTS_CA_BUNDLE=cafile)
        base = {"endpoint": double.url, "sa_file": sa_file, "project": double.project, "pubkey": pubkey,
                "admin": ADMIN, "ansible_python_interpreter": sys.executable}
        results = {}
        for side, text, side_env in (("ours", OURS, env), ("google.cloud", PEER, peer_env)):
            path = os.path.join(work, "%s.yml" % side.replace(".", "_"))
            with open(path, "w") as handle:
                handle.write(text)
            cluster = "bench-%s-%s" % ("ours" if side == "ours" else "peer", uuid.uuid4().hex[:6])
            results[side] = measure(double, path, dict(base, cluster=cluster), side_env)
            nodes = [i for i in double.live_instances() if i["name"].startswith(cluster + "-")]
            results[side].append(len(nodes))
    finally:
        double.stop()

    print("gcp: firewall (SSH from an admin network, all between the nodes) + %d x %s in %s, wait for RUNNING "
          "(Compute API double; operations %.2f s PENDING + %.2f s RUNNING)"
          % (COUNT, TYPE, ZONE, double.pending_s, double.running_s))
    print("%-14s %10s %8s %10s %8s %7s" % ("", "first (s)", "calls", "re-run (s)", "calls", "nodes"))
    for side in ("ours", "google.cloud"):
        (w1, c1, _d1), (w2, c2, _d2), nodes = results[side]
        print("%-14s %10.2f %8d %10.2f %8d %7d" % (side, w1, c1, w2, c2, nodes))
    (o1, oc1, od1), (o2, oc2, od2), _n = results["ours"]
    (p1, pc1, pd1), (p2, pc2, pd2), _n = results["google.cloud"]
    print("ratio ours/peer: first run  wall %.2fx  calls %.2fx" % (o1 / p1, float(oc1) / pc1))
    print("                 re-run     wall %.2fx  calls %.2fx" % (o2 / p2, float(oc2) / pc2))
    print("ours, first run calls:         %s" % json.dumps(od1, sort_keys=True))
    print("ours, re-run calls:            %s" % json.dumps(od2, sort_keys=True))
    print("google.cloud, first run calls: %s" % json.dumps(pd1, sort_keys=True))
    print("google.cloud, re-run calls:    %s" % json.dumps(pd2, sort_keys=True))


if __name__ == "__main__":
    main()
