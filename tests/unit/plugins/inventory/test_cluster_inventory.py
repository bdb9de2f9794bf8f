"""plugins/inventory/cluster.py read by ansible-inventory: which files it takes, and the settings it refuses before
asking any cloud (the nodes themselves: tests/integration, on real local nodes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import COLLECTIONS, ROOT, VENV_BIN, ansible_env

from ansible_collections.aiinfra.gpu_cluster.plugins.inventory.cluster import (
    InventoryModule, known_hosts_path, ssh_host_key_vars)


def inventory(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", str(path), "--list"], cwd=ROOT,
                          env=ansible_env({"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "GPU_CLUSTER_NAME": ""}),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    # ansible-core 2.16 wraps its warnings (at spaces here: none of the words looked for has a hyphen)
    return proc.returncode, " ".join(proc.stderr.split())


@pytest.mark.parametrize("name, taken", [("demo.gpu_cluster.yml", True), ("demo.gpu_cluster.yaml", True),
                                         ("gpu_cluster.yml", True), ("demo.yml", False), ("gpu_cluster.json", False)])
def test_the_files_it_reads(tmp_path, name, taken):
    path = tmp_path / name
    path.write_text("plugin: aiinfra.gpu_cluster.cluster\n")
    assert InventoryModule().verify_file(str(path)) is taken


def test_a_shared_account_has_no_default_cluster(tmp_path):
    rc, errors = inventory(tmp_path, "x.gpu_cluster.yml", "plugin: aiinfra.gpu_cluster.cluster\ncloud: aws\n")
    assert rc != 0
    assert "no cluster name on cloud aws" in errors and "GPU_CLUSTER_NAME" in errors


def test_a_cluster_id_every_cloud_cannot_take_is_refused(tmp_path):
    rc, errors = inventory(tmp_path, "y.gpu_cluster.yml",
                           "plugin: aiinfra.gpu_cluster.cluster\ncloud: local\ncluster: Bad_Name\n")
    assert rc != 0 and "cluster id 'Bad_Name' is not accepted by every cloud" in errors


def test_ssh_records_a_nodes_key_at_first_contact_and_checks_it_after():
    path = known_hosts_path("aws", "llm-01")
    assert path == "~/.cache/aiinfra/known_hosts/aws-llm-01"
    found = ssh_host_key_vars("/tmp/known hosts")
    assert found["ansible_host_key_checking"] is True
    assert "StrictHostKeyChecking=accept-new" in found["ansible_ssh_common_args"]
    assert "UserKnownHostsFile='/tmp/known hosts'" in found["ansible_ssh_common_args"]


# in a process of its own: the plugin loaded by Ansible's collection loader, with its documented options, and no
# cloud asked (the provider lists no nodes)
PARSE = """
import json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible_collections.aiinfra.gpu_cluster.plugins.inventory import cluster


class NoNodes(object):
    def list_nodes(self, name):
        return []


cluster.get_provider = lambda cloud, options: NoNodes()
data = InventoryData()
inventory_loader.get("aiinfra.gpu_cluster.cluster").parse(data, DataLoader(), sys.argv[2], cache=False)
print(json.dumps(data.groups["gpu_nodes"].get_vars()))
"""


@pytest.mark.parametrize("setting, pipelined", [("", True), ("pipelining: true\n", True),
                                                ("pipelining: false\n", None)])
def test_the_nodes_group_pipelines_modules_unless_told_not_to(tmp_path, setting, pipelined):
    path = tmp_path / "p.gpu_cluster.yml"
    path.write_text("plugin: aiinfra.gpu_cluster.cluster\ncloud: local\ncluster: pipe\n" + setting)
    proc = subprocess.run([sys.executable, "-c", PARSE, COLLECTIONS, str(path)], cwd=str(tmp_path), env=ansible_env(),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found.get("ansible_pipelining") is pipelined and found["gpu_cluster_name"] == "pipe"
