"""Host keys of the cluster's nodes are known: recorded at first contact in the cluster's own known-hosts file
(StrictHostKeyChecking=accept-new), checked on every later contact; a replaced node's old key is removed and the new
one accepted; a changed key on a node that was not replaced is refused; bring-your-own servers keep ssh's strict
checking. One local cluster of two nodes for the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import KEY, ROOT, destroy_cluster, podman, run_playbook, unique_name, write_inventory

KNOWN_HOSTS_DIR = os.path.expanduser("~/.cache/aiinfra/known_hosts")


def known_hosts_of(name):
    return os.path.join(KNOWN_HOSTS_DIR, "local-%s" % name)


def address(node):
    return podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node).stdout.strip()


def host_keys(node):
    """The key blobs (base64) of the node's sshd host keys."""
    out = podman("exec", node, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout
    return set(line.split()[1] for line in out.splitlines() if line.strip())


def recorded(known_hosts, host):
    """Key blobs recorded for ``host`` (hashed or not) in the file."""
    proc = subprocess.run(["ssh-keygen", "-F", host, "-f", known_hosts], capture_output=True, text=True, check=False)
    return set(line.split()[2] for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#"))


def all_recorded(known_hosts):
    with open(known_hosts) as handle:
        return set(line.split()[2] for line in handle if line.strip() and not line.startswith("#"))


def answer(cluster, tmp_path, inventory=None, check=True):
    """playbooks/nodes_answer.yml with a control-path directory of its own (no SSH master of an earlier run may
    carry the connection past the host key check)."""
    cp_dir = tmp_path / ("cp-%d" % len(os.listdir(str(tmp_path))))
    cp_dir.mkdir()
    return run_playbook("playbooks/nodes_answer.yml", inventory=inventory or cluster["inventory"], check=check,
                        env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp_dir)}, extra_vars={"gpu_cluster_ssh_timeout": 20})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    name = unique_name("hk")
    tmp = tmp_path_factory.mktemp("host-keys")
    try:
        inventory = write_inventory(tmp, name, 2)
        run_playbook("playbooks/provision.yml", inventory=inventory, timeout=900)
        yield {"name": name, "inventory": inventory, "nodes": ["%s-%d" % (name, r) for r in range(2)]}
    finally:
        destroy_cluster(name)
        if os.path.exists(known_hosts_of(name)):
            os.unlink(known_hosts_of(name))


def test_first_contact_records_each_node_key_in_the_cluster_file(cluster, tmp_path):
    proc = answer(cluster, tmp_path)
    assert proc.stdout.count("answers over ssh") == 2, proc.stdout[-3000:]
    known = known_hosts_of(cluster["name"])
    for node in cluster["nodes"]:
        keys = recorded(known, address(node))
        assert keys and keys <= host_keys(node), (node, keys)
    # nothing went to the user's own known_hosts
    user_file = os.path.expanduser("~/.ssh/known_hosts")
    if os.path.exists(user_file):
        for node in cluster["nodes"]:
            assert not recorded(user_file, address(node)) & host_keys(node)


def test_a_replaced_node_old_key_goes_and_its_new_key_is_accepted(cluster, tmp_path):
    answer(cluster, tmp_path)
    known = known_hosts_of(cluster["name"])
    node = cluster["nodes"][1]
    old_keys = host_keys(node)
    assert recorded(known, address(node)) & old_keys
    before = podman("inspect", "-f", "{{.Id}}", node).stdout.strip()
    run_playbook("playbooks/recover.yml", inventory=cluster["inventory"],
                 extra_vars={"gpu_cluster_replace": "1", "gpu_cluster_recover_roles": []}, timeout=900)
    assert podman("inspect", "-f", "{{.Id}}", node).stdout.strip() != before      # a new container
    new_keys = host_keys(node)
    assert not new_keys & old_keys
    proc = answer(cluster, tmp_path)
    assert proc.stdout.count("answers over ssh") == 2, proc.stdout[-3000:]
    assert recorded(known, address(node)) & new_keys
    assert not all_recorded(known) & old_keys                                     # the old key is gone


def test_a_changed_key_on_a_node_not_replaced_is_refused(cluster, tmp_path):
    answer(cluster, tmp_path)
    known = known_hosts_of(cluster["name"])
    node = cluster["nodes"][0]
    was = recorded(known, address(node))
    # the node's sshd answers with other keys (as a man in the middle would)
    podman("exec", node, "sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    proc = answer(cluster, tmp_path, check=False)
    assert proc.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stdout or "Host key verification failed" in proc.stdout, \
        proc.stdout[-3000:]
    assert "rank 1: " in proc.stdout and "rank 0: " not in proc.stdout          # the other node still answers
    assert recorded(known, address(node)) == was                                 # not overwritten


def test_bring_your_own_servers_keep_strict_checking(cluster, tmp_path):
    """The same servers as bring-your-own nodes: unknown keys are refused; with a known_hosts of the user's, they
    answer."""
    def byo(extra_vars):
        inv = tmp_path / ("byo-%d" % len(os.listdir(str(tmp_path))))
        inv.mkdir()
        (inv / "group_vars").mkdir()
        for rel in ("group_vars/all", "group_vars/gpu_nodes"):
            os.symlink(os.path.join(ROOT, "inventories", "byo", rel), str(inv / rel))
        hosts = dict(("server%d" % r, {"ansible_host": address(n)}) for r, n in enumerate(cluster["nodes"]))
        (inv / "hosts.yml").write_text(json.dumps({"all": {
            "hosts": {"localhost": {"ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
            "vars": {"gpu_cluster_name": "onprem-" + cluster["name"]},
            "children": {"gpu_nodes": {"hosts": hosts, "vars": dict(
                {"ansible_ssh_private_key_file": KEY, "ansible_user": "gpuadmin"}, **extra_vars)}}}}))
        return str(inv)

    proc = answer(cluster, tmp_path, inventory=byo({}), check=False)
    assert proc.returncode != 0 and "Host key verification failed" in proc.stdout, proc.stdout[-3000:]
    user_known = tmp_path / "known_hosts"
    scan = subprocess.run(["ssh-keyscan", "-T", "5"] + [address(n) for n in cluster["nodes"]], capture_output=True,
                          text=True, check=True)
    user_known.write_text(scan.stdout)
    proc = answer(cluster, tmp_path, inventory=byo({"ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % user_known}))
    assert proc.stdout.count("answers over ssh") == 2, proc.stdout[-3000:]


def test_teardown_removes_the_cluster_known_hosts_file(cluster, tmp_path):
    answer(cluster, tmp_path, check=False)
    assert os.path.exists(known_hosts_of(cluster["name"]))
    run_playbook("playbooks/teardown.yml", inventory=cluster["inventory"], timeout=600)
    assert not os.path.exists(known_hosts_of(cluster["name"]))
