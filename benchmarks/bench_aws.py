#!/usr/bin/env python
"""Provision the same 8-node p4d.24xlarge cluster with our modules and with amazon.aws, side by side.

Both sides run through ansible-playbook against the same moto EC2 server (loopback), behind the test
suite's EC2 proxy, which counts every API call and supplies the placement groups moto lacks. Each side
creates a key pair, a security group (SSH from an admin network, all traffic inside the group), a cluster
placement group and 8 instances in one subnet, waiting until they run; then runs again unchanged.

  ours:      aiinfra.gpu_cluster.firewall + aiinfra.gpu_cluster.instance (count 8)
  amazon.aws ec2_key + ec2_security_group + ec2_placement_group + ec2_instance (exact_count 8, wait)

Prints wall time and API calls for the first run and the re-run, and the ratios. Prints; does not assert.
Aim: at most half the peer's calls, at most 0.7x its wall time, an unchanged re-run in at most 3 calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from ec2_proxy import Ec2Proxy, MotoServer  # noqa: E402  pylint: disable=wrong-import-position

VENV_BIN = os.path.dirname(sys.executable)
COUNT = 8
TYPE = "p4d.24xlarge"
IMAGE_PATTERN = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"
ADMIN = "198.51.100.0/24"

OURS = """
- name: Cluster with aiinfra.gpu_cluster
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/aiinfra.gpu_cluster.cloud:
      cloud: aws
      region: us-east-1
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
        image: "{{ image_id }}"
        placements: [{subnet_id: "{{ subnet }}"}]
        ssh_public_key: "{{ pubkey }}"
        wait: true
""" % {"count": COUNT, "type": TYPE}

PEER = """
- name: Cluster with amazon.aws
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws:
      region: us-east-1
      endpoint_url: "{{ endpoint }}"
  tasks:
    - name: Key pair
      amazon.aws.ec2_key:
        name: "{{ cluster }}"
        key_material: "{{ pubkey }}"
        tags: {cluster: "{{ cluster }}"}
    - name: Security group
      amazon.aws.ec2_security_group:
        name: "{{ cluster }}"
        description: SSH from admins, all traffic inside
        vpc_id: "{{ vpc }}"
        rules:
          - {proto: tcp, ports: [22], cidr_ip: "{{ admin }}"}
          - {proto: all, group_name: "{{ cluster }}"}
        tags: {cluster: "{{ cluster }}"}
    - name: Placement group
      amazon.aws.ec2_placement_group:
        name: "{{ cluster }}"
        strategy: cluster
    - name: Nodes
      amazon.aws.ec2_instance:
        name: "{{ cluster }}"
        instance_type: %(type)s
        image_id: "{{ image_id }}"
        key_name: "{{ cluster }}"
        security_group: "{{ cluster }}"
        vpc_subnet_id: "{{ subnet }}"
        placement: {group_name: "{{ cluster }}"}
        metadata_options: {http_tokens: required}
        exact_count: %(count)d
        tags: {cluster: "{{ cluster }}"}
        wait: true
""" % {"count": COUNT, "type": TYPE}


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


def measure(proxy, playbook, variables, env):
    out = []
    for _attempt in ("first", "re-run"):
        proxy.calls.clear()
        wall = run(playbook, variables, env)
        out.append((wall, proxy.total_calls(), dict(proxy.calls)))
    return out


def main():
    import boto3  # pylint: disable=import-outside-toplevel

    moto = MotoServer()
    proxy = Ec2Proxy(moto.url)
    work = tempfile.mkdtemp(prefix="bench-aws-")
    try:
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto.url, aws_access_key_id="bench",
                           aws_secret_access_key="bench")
        images = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": [IMAGE_PATTERN]}])["Images"]
        subnet = sorted(ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"],
                        key=lambda s: s["AvailabilityZone"])[0]
        with open(os.path.join(ROOT, ".ssh", "id_ed25519.pub")) as handle:
            pubkey = handle.read().strip()
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                   AWS_ENDPOINT_URL=proxy.url, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=os.path.join(work, "none"), AWS_SHARED_CREDENTIALS_FILE=os.path.join(work, "none"),
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        env.pop("GPU_CLUSTER_NAME", None)
        base = {"endpoint": proxy.url, "image_id": images[0]["ImageId"], "subnet": subnet["SubnetId"],
                "vpc": subnet["VpcId"], "pubkey": pubkey, "admin": ADMIN,
                "ansible_python_interpreter": sys.executable}
        results = {}
        for side, text in (("ours", OURS), ("amazon.aws", PEER)):
            path = os.path.join(work, "%s.yml" % side.replace(".", "_"))
            with open(path, "w") as handle:
                handle.write(text)
            cluster = "bench-%s-%s" % ("ours" if side == "ours" else "peer", uuid.uuid4().hex[:6])
            results[side] = measure(proxy, path, dict(base, cluster=cluster), env)
            live = [i for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])[
                "Reservations"] for i in r["Instances"] if cluster in [t["Value"] for t in i.get("Tags", [])]]
            results[side].append(len(live))
    finally:
        proxy.stop()
        moto.stop()

    print("aws: security group + placement group + key pair + %d x %s, wait for running (moto behind the proxy)"
          % (COUNT, TYPE))
    print("%-12s %10s %8s %10s %8s %7s" % ("", "first (s)", "calls", "re-run (s)", "calls", "nodes"))
    for side in ("ours", "amazon.aws"):
        (w1, c1, _d1), (w2, c2, _d2), nodes = results[side]
        print("%-12s %10.2f %8d %10.2f %8d %7d" % (side, w1, c1, w2, c2, nodes))
    (o1, oc1, od1), (o2, oc2, od2), _n = results["ours"]
    (p1, pc1, _pd1), (p2, pc2, _pd2), _n = results["amazon.aws"]
    print("ratio ours/peer: first run  wall %.2fx  calls %.2fx   (aim <= 0.70x wall, <= 0.50x calls)"
          % (o1 / p1, float(oc1) / pc1))
    print("                 re-run     wall %.2fx  calls %.2fx   (aim: re-run <= 3 calls; ours made %d)"
          % (o2 / p2, float(oc2) / pc2, oc2))
    print("ours, first run calls by action: %s" % json.dumps(od1, sort_keys=True))
    print("ours, re-run calls by action:    %s" % json.dumps(od2, sort_keys=True))


if __name__ == "__main__":
    main()
