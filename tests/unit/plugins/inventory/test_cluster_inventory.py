"""plugins/inventory/cluster.py read by ansible-inventory: which files it takes, and the settings it refuses before
asking any cloud (the nodes themselves: tests/integration, on real local nodes)."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT, VENV_BIN, ansible_env

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
