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
import os
import sys
import tempfile

import _peer  # first: it puts tests/integration on sys.path
from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT, ArmDouble

COUNT = 4
SIZE = "Standard_ND96isr_H100_v5"
IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"

OURS = _peer.ours({"cloud": "azure", "endpoint_url": '"{{ endpoint }}"', "location": "eastus"},
                  {"count": COUNT, "instance_type": SIZE, "image": IMAGE, "ssh_public_key": '"{{ key }}"'})

PEER = _peer.play("azure.azcollection", "azure.azcollection.all",
                  {"cloud_environment": '"{{ endpoint }}/metadata/endpoints?api-version=2019-05-01"',
                   "disable_instance_discovery": "true", "adfs_authority_url": '"{{ endpoint }}"'}) + """  vars:
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


def side(name, arm, python_bin, playbook_text, env_extra=None):
    """Our side or the peer's (``python_bin`` and the ansible-playbook beside it): first run and re-run, printed."""
    env = _peer.environment(python_bin, ANSIBLE_NOCOLOR="1", AZURE_SUBSCRIPTION_ID=SUBSCRIPTION, AZURE_TENANT_ID=TENANT,
                            AZURE_TENANT=TENANT, AZURE_CLIENT_ID=CLIENT_ID, AZURE_CLIENT_SECRET=CLIENT_SECRET,
                            AZURE_SECRET=CLIENT_SECRET)
    env.update(arm.env())
    env.update(env_extra or {})
    extra = {"cluster": _peer.cluster_name(playbook_text == OURS), "key": _peer.pubkey(), "admin": _peer.ADMIN,
             "endpoint": arm.url, "ansible_python_interpreter": python_bin}
    with tempfile.TemporaryDirectory() as tmp:
        first, again = _peer.first_and_rerun(_peer.write_playbook(tmp, "pb", playbook_text), extra, env,
                                             (arm.reset_counts, lambda: arm_calls(arm)), python_bin, timeout=1800)
    for label, res in (("first run", first), ("re-run", again)):
        if res:
            print("%-20s %-9s ok=%s wall %6.1f s  API calls %4d (+ %d operation polls)"
                  % (name, label, res.ok, res.wall, res.calls, res.by_kind.get("GET operations", 0)))
    return first, again


def arm_calls(arm):
    """ARM requests since the last reset, not counting operation polls, and the requests by kind (polls as
    "GET operations"); token requests are left out of both."""
    calls = dict(arm.calls)
    calls.pop("POST token", None)
    return sum(calls.values()) - calls.get("GET operations", 0), calls


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
        shim = {"PYTHONPATH": os.path.join(_peer.ROOT, "benchmarks", "azure_peer_shim"),
                # credentials from the environment take these from the environment too (module options are not read)
                "AZURE_CLOUD_ENVIRONMENT": arm.url + "/metadata/endpoints?api-version=2019-05-01",
                "AZURE_ADFS_AUTHORITY_URL": arm.url, "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
                # the azure.azcollection the `ansible` package ships (in this venv), run by the peer's ansible-core
                "ANSIBLE_COLLECTIONS_PATH": os.path.dirname(os.path.dirname(__import__("ansible").__file__))}
        peer = side("azure.azcollection", arm, args.peer, PEER, shim)
        for i, label in enumerate(("first run", "re-run")):
            if ours[i] and peer[i] and ours[i].ok and peer[i].ok:
                print("ratio peer/ours %-9s wall %.2fx  API calls %.2fx"
                      % (label, peer[i].wall / ours[i].wall, peer[i].calls / max(1, ours[i].calls)))
    finally:
        arm.stop()


if __name__ == "__main__":
    main()
