#!/usr/bin/env python
"""Provision 4 x Standard_ND96isr_H100_v5 + the NSG with our modules (and, where it can run, azure.azcollection)
against the ARM double, first run and unchanged re-run.

Both sides go through ansible-playbook against the same double (tests/integration/arm_double.py: HTTPS with a local
CA, the token endpoint, long-running operations with Azure-AsyncOperation and Retry-After: 1), which counts every
request. "API calls" are ARM requests (operation polls included, counted apart); token requests are not counted.

  ours:             aiinfra.gpu_cluster.firewall + aiinfra.gpu_cluster.instance (count 4, wait)
  azure.azcollection (--peer PYTHON, a Python with the collection's requirements.txt installed):
                    azure_rm_resourcegroup, azure_rm_virtualnetwork, azure_rm_subnet, azure_rm_securitygroup,
                    azure_rm_proximityplacementgroup, azure_rm_availabilityset, then per node
                    azure_rm_publicipaddress (sku standard), azure_rm_networkinterface and azure_rm_virtualmachine
                    (a loop of 4)

Prints wall time and API calls for the first run and the unchanged re-run, and the ratios. Prints; does not assert.

  .venv/bin/python benchmarks/bench_azure.py [--peer .cache/azpeer-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT, ArmDouble  # noqa: E402  pylint: disable=wrong-import-position

VENV_BIN = os.path.dirname(sys.executable)
COUNT = 4
SIZE = "Standard_ND96isr_H100_v5"
IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
ADMIN = "198.51.100.0/24"

OURS = """
- name: Cluster with aiinfra.gpu_cluster
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/aiinfra.gpu_cluster.cloud:
      cloud: azure
      endpoint_url: "{{ endpoint }}"
      location: eastus
  tasks:
    - name: Firewall
      aiinfra.gpu_cluster.firewall:
        cluster: "{{ cluster }}"
        admin_cidrs: ["{{ admin }}"]
    - name: Nodes
      aiinfra.gpu_cluster.instance:
        cluster: "{{ cluster }}"
        count: %d
        instance_type: %s
        image: %s
        ssh_public_key: "{{ key }}"
""" % (COUNT, SIZE, IMAGE)

PEER = """
- name: Cluster with azure.azcollection
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/azure.azcollection.all:
      cloud_environment: "{{ endpoint }}/metadata/endpoints?api-version=2019-05-01"
      disable_instance_discovery: true
      adfs_authority_url: "{{ endpoint }}"
  vars:
    rg: "peer-{{ cluster }}"
  tasks:
    - azure.azcollection.azure_rm_resourcegroup: {name: "{{ rg }}", location: eastus}
    - azure.azcollection.azure_rm_securitygroup:
        resource_group: "{{ rg }}"
        name: "{{ cluster }}-nsg"
        rules:
          - {name: ssh, protocol: Tcp, destination_port_range: 22, source_address_prefix: "{{ admin }}",
             access: Allow, priority: 100, direction: Inbound}
    - azure.azcollection.azure_rm_virtualnetwork:
        {resource_group: "{{ rg }}", name: "{{ cluster }}-vnet", address_prefixes_cidr: [10.42.0.0/16]}
    - azure.azcollection.azure_rm_subnet:
        resource_group: "{{ rg }}"
        virtual_network_name: "{{ cluster }}-vnet"
        name: nodes
        address_prefix_cidr: 10.42.0.0/16
        security_group: "{{ cluster }}-nsg"
    - azure.azcollection.azure_rm_proximityplacementgroup: {resource_group: "{{ rg }}", name: "{{ cluster }}-ppg"}
    - azure.azcollection.azure_rm_availabilityset:
        resource_group: "{{ rg }}"
        name: "{{ cluster }}-avset"
        sku: Aligned
        platform_fault_domain_count: 2
        proximity_placement_group: "{{ cluster }}-ppg"
    - azure.azcollection.azure_rm_publicipaddress:
        {resource_group: "{{ rg }}", name: "{{ cluster }}-{{ item }}-ip", sku: standard, allocation_method: static}
      loop: "{{ range(%d) | list }}"
    - azure.azcollection.azure_rm_networkinterface:
        resource_group: "{{ rg }}"
        name: "{{ cluster }}-{{ item }}-nic"
        virtual_network: "{{ cluster }}-vnet"
        subnet_name: nodes
        create_with_security_group: false
        enable_accelerated_networking: true
        ip_configurations: [{name: primary, public_ip_address_name: "{{ cluster }}-{{ item }}-ip", primary: true}]
      loop: "{{ range(%d) | list }}"
    - azure.azcollection.azure_rm_virtualmachine:
        resource_group: "{{ rg }}"
        name: "{{ cluster }}-{{ item }}"
        vm_size: %s
        admin_username: gpuadmin
        ssh_password_enabled: false
        ssh_public_keys: [{path: /home/gpuadmin/.ssh/authorized_keys, key_data: "{{ key }}"}]
        network_interface_names: ["{{ cluster }}-{{ item }}-nic"]
        availability_set: "{{ cluster }}-avset"
        proximity_placement_group: {name: "{{ cluster }}-ppg", resource_group: "{{ rg }}"}
        image: {publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2204", version: latest}
        os_disk_size_gb: 256
        managed_disk_type: Premium_LRS
      loop: "{{ range(%d) | list }}"
""" % (COUNT, COUNT, SIZE, COUNT)


def run(arm, python_bin, playbook_text, extra, env_extra):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pb.yml")
        with open(path, "w") as handle:
            handle.write(playbook_text)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   PATH=os.path.dirname(python_bin) + os.pathsep + os.environ.get("PATH", ""), **arm.env())
        env.update(AZURE_SUBSCRIPTION_ID=SUBSCRIPTION, AZURE_TENANT_ID=TENANT, AZURE_TENANT=TENANT,
                   AZURE_CLIENT_ID=CLIENT_ID, AZURE_CLIENT_SECRET=CLIENT_SECRET, AZURE_SECRET=CLIENT_SECRET)
        env.update(env_extra)
        arm.reset_counts()
        start = time.monotonic()
        proc = subprocess.run([os.path.join(os.path.dirname(python_bin), "ansible-playbook"), path, "-i",
                               "localhost,", "-c", "local", "-e", json.dumps(dict(extra, ansible_python_interpreter=python_bin))],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
        wall = time.monotonic() - start
        calls = dict(arm.calls)
    polls = calls.pop("GET operations", 0)
    calls.pop("POST token", None)
    total = sum(calls.values())
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:])
    return {"ok": proc.returncode == 0, "wall": wall, "calls": total, "polls": polls, "by_kind": calls}


def side(name, arm, python_bin, playbook_text, env_extra=None):
    cluster = "bench-%s" % uuid.uuid4().hex[:6]
    key = open(os.path.join(ROOT, ".ssh", "id_ed25519.pub")).read().strip()
    extra = {"cluster": cluster, "key": key, "admin": ADMIN, "endpoint": arm.url}
    first = run(arm, python_bin, playbook_text, extra, env_extra or {})
    again = run(arm, python_bin, playbook_text, extra, env_extra or {}) if first["ok"] else None
    for label, res in (("first run", first), ("re-run", again)):
        if res:
            print("%-20s %-9s ok=%s wall %6.1f s  API calls %4d (+ %d operation polls)"
                  % (name, label, res["ok"], res["wall"], res["calls"], res["polls"]))
    return first, again


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--peer", help="a Python with azure.azcollection's requirements (its ansible-playbook beside)")
    parser.add_argument("--lro-seconds", type=float, default=0.05)
    parser.add_argument("--peer-only", action="store_true", help="skip our side (debugging the peer)")
    args = parser.parse_args()
    if args.peer:
        args.peer = os.path.abspath(args.peer)
    arm = ArmDouble(lro_seconds=args.lro_seconds)
    try:
        print("double: %s, %d x %s, LRO %.2f s + Retry-After 1" % (arm.url, COUNT, SIZE, args.lro_seconds))
        ours = side("aiinfra.gpu_cluster", arm, sys.executable, OURS) if not args.peer_only else (None, None)
        if not args.peer:
            print("azure.azcollection: not run (pass --peer PYTHON with its requirements.txt installed)")
            return
        # what azure.azcollection needs to reach the double: cloud_environment pointing at the double's metadata
        # document, disable_instance_discovery, AZURE_AUTHORITY_HOST (via arm.env()), and a shim that gives current
        # azure-cli-core back get_cloud_from_metadata_endpoint (benchmarks/azure_peer_shim)
        shim = {"PYTHONPATH": os.path.join(ROOT, "benchmarks", "azure_peer_shim"),
                # credentials from the environment take these from the environment too (module options are not read)
                "AZURE_CLOUD_ENVIRONMENT": arm.url + "/metadata/endpoints?api-version=2019-05-01",
                "AZURE_ADFS_AUTHORITY_URL": arm.url, "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
                # the azure.azcollection the `ansible` package ships (in this venv), run by the peer's ansible-core
                "ANSIBLE_COLLECTIONS_PATH": os.path.dirname(os.path.dirname(__import__("ansible").__file__))}
        peer = side("azure.azcollection", arm, args.peer, PEER, shim)
        for i, label in enumerate(("first run", "re-run")):
            if ours[i] and peer[i] and ours[i]["ok"] and peer[i]["ok"]:
                print("ratio peer/ours %-9s wall %.2fx  API calls %.2fx"
                      % (label, peer[i]["wall"] / ours[i]["wall"], peer[i]["calls"] / max(1, ours[i]["calls"])))
    finally:
        arm.stop()


if __name__ == "__main__":
    main()
