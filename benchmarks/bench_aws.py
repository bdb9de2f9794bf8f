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

import os
import sys
import tempfile

import _peer  # first: it puts tests/integration on sys.path
from ec2_proxy import Ec2Proxy, MotoServer

COUNT = 8
TYPE = "p4d.24xlarge"
IMAGE_PATTERN = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"

OURS = _peer.ours({"cloud": "aws", "region": "us-east-1", "endpoint_url": '"{{ endpoint }}"'},
                  {"count": COUNT, "instance_type": TYPE, "image": '"{{ image_id }}"',
                   "placements": '[{subnet_id: "{{ subnet }}"}]', "ssh_public_key": '"{{ pubkey }}"', "wait": "true"})

PEER = _peer.play("amazon.aws", "amazon.aws.aws", {"region": "us-east-1", "endpoint_url": '"{{ endpoint }}"'}) + """  tasks:
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
        env = _peer.environment(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                                AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=proxy.url, AWS_EC2_METADATA_DISABLED="true",
                                AWS_CONFIG_FILE=os.path.join(work, "none"), AWS_SHARED_CREDENTIALS_FILE=os.path.join(work, "none"))
        base = {"endpoint": proxy.url, "image_id": images[0]["ImageId"], "subnet": subnet["SubnetId"],
                "vpc": subnet["VpcId"], "pubkey": _peer.pubkey(), "admin": _peer.ADMIN,
                "ansible_python_interpreter": sys.executable}
        counter = (proxy.calls.clear, lambda: (proxy.total_calls(), dict(proxy.calls)))
        results = {}
        for side, text in (("ours", OURS), ("amazon.aws", PEER)):
            cluster = _peer.cluster_name(side == "ours")
            runs = _peer.measure(_peer.write_playbook(work, side, text), dict(base, cluster=cluster), env, counter)
            live = [i for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])[
                "Reservations"] for i in r["Instances"] if cluster in [t["Value"] for t in i.get("Tags", [])]]
            results[side] = (runs[0], runs[1], len(live))
    finally:
        proxy.stop()
        moto.stop()

    _peer.print_table("aws: security group + placement group + key pair + %d x %s, wait for running (moto behind the proxy)"
                      % (COUNT, TYPE), results,
                      aims=("   (aim <= 0.70x wall, <= 0.50x calls)",
                            "   (aim: re-run <= 3 calls; ours made %d)" % results["ours"][1].calls),
                      detail_label="calls by action")


if __name__ == "__main__":
    main()
