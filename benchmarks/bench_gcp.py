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
import os
import sys
import tempfile

import _peer  # first: it puts tests/integration on sys.path
from gce_double import ComputeDouble, make_tls, service_account_file

COUNT = 8
TYPE = "a3-highgpu-8g"
ZONE = "us-central1-a"
IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"

OURS = _peer.ours({"cloud": "gcp", "credentials_file": '"{{ sa_file }}"', "endpoint_url": '"{{ endpoint }}"'},
                  {"count": COUNT, "instance_type": TYPE, "image": IMAGE, "placements": "[{zone: %s}]" % ZONE,
                   "root_volume_size": 200, "ssh_public_key": '"{{ pubkey }}"', "wait": "true"},
                  # the double's default network carries GCP's own wide default rules (default-allow-ssh from
                  # anywhere): our firewall refuses to call SSH closed next to them unless told they are accepted
                  firewall={"allow_network_rules": "true"})

PEER = _peer.play("google.cloud", "google.cloud.gcp", {"project": '"{{ project }}"', "auth_kind": "serviceaccount",
                                                       "service_account_file": '"{{ sa_file }}"'}) + """  tasks:
    - name: Firewall, SSH from the admin network
      google.cloud.gcp_compute_firewall:
        name: "{{ cluster }}-ssh"
        network: {selfLink: "https://www.googleapis.com/compute/v1/projects/{{ project }}/global/networks/default"}
        allowed: [{ip_protocol: tcp, ports: ["22"]}]
        source_ranges: ["{{ admin }}"]
        target_tags: ["{{ cluster }}"]
    - name: Firewall, everything between the nodes
      google.cloud.gcp_compute_firewall:
        name: "{{ cluster }}-internal"
        network: {selfLink: "https://www.googleapis.com/compute/v1/projects/{{ project }}/global/networks/default"}
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
          - network: {selfLink: "https://www.googleapis.com/compute/v1/projects/{{ project }}/global/networks/default"}
            access_configs: [{name: External NAT, type: ONE_TO_ONE_NAT}]
        scheduling: {on_host_maintenance: TERMINATE, automatic_restart: true}
        metadata: {ssh-keys: "gpuadmin:{{ pubkey }}"}
        labels: {cluster: "{{ cluster }}", rank: "r{{ item }}"}
        tags: {items: ["{{ cluster }}"]}
        state: present
      loop: "{{ range(%(count)d) | list }}"
""" % {"count": COUNT, "type": TYPE, "image": IMAGE, "zone": ZONE}


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
        env = _peer.environment(NO_GCE_CHECK="True", CLOUDSDK_CONFIG=os.path.join(work, "gcloud"))
        for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GCP_SERVICE_ACCOUNT_FILE", "GCP_PROJECT",
                     "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        peer_env = dict(env, HTTPS_PROXY="http://127.0.0.1:%d" % double.port,
                        https_proxy="http://127.0.0.1:%d" % double.port, NO_PROXY="127.0.0.1,localhost",
                        no_proxy="127.0.0.1,localhost", REQUESTS_CA_BUNDLE=cafile)
        base = {"endpoint": double.url, "sa_file": sa_file, "project": double.project, "pubkey": _peer.pubkey(),
                "admin": _peer.ADMIN, "ansible_python_interpreter": sys.executable}
        counter = (double.log.clear,
                   lambda: (len(double.log), dict(collections.Counter(e["id"].split(".", 1)[1] for e in double.log))))
        results = {}
        for side, text, side_env in (("ours", OURS, env), ("google.cloud", PEER, peer_env)):
            cluster = _peer.cluster_name(side == "ours")
            runs = _peer.measure(_peer.write_playbook(work, side, text), dict(base, cluster=cluster), side_env, counter)
            nodes = [i for i in double.live_instances() if i["name"].startswith(cluster + "-")]
            results[side] = (runs[0], runs[1], len(nodes))
    finally:
        double.stop()

    _peer.print_table("gcp: firewall (SSH from an admin network, all between the nodes) + %d x %s in %s, wait for RUNNING "
                      "(Compute API double; operations %.2f s PENDING + %.2f s RUNNING)"
                      % (COUNT, TYPE, ZONE, double.pending_s, double.running_s), results, detail=("ours", "google.cloud"))


if __name__ == "__main__":
    main()
