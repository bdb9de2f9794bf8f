"""The local cloud checks two host limits before it makes a node. Past fs.inotify.max_user_instances a new node's
systemd exits at once and podman says only "container state improper" (seen at the 21st node of a 32-node cluster
with the default limit of 128). Past net.ipv4.neigh.default.gc_thresh3 a job's full mesh fails with "No route to host"
(seen at 32 nodes with the default 1024: /proc/net/stat/arp_cache counted table_fulls)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import provider


def fake_proc(tmp_path, processes):
    """processes: [(uid, inotify fds, other fds)] as /proc/<pid>/fd symlinks (owned by us; uid is checked by stat)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()
    for pid, (inotify, other) in enumerate(processes, start=1):
        fds = proc / str(pid) / "fd"
        fds.mkdir(parents=True)
        for n in range(inotify):
            os.symlink("anon_inode:inotify", str(fds / str(n)))
        for n in range(other):
            os.symlink("/dev/null", str(fds / str(100 + n)))
    return proc


def limit(tmp_path, value):
    path = tmp_path / "max_user_instances"
    path.write_text("%s\n" % value)
    return str(path)


def test_counts_the_inotify_instances_of_the_user(tmp_path):
    proc = fake_proc(tmp_path, [(5, 3), (1, 0), (0, 7)])
    assert provider.inotify_instances(os.geteuid(), str(proc)) == 6
    assert provider.inotify_instances(os.geteuid() + 12345, str(proc)) == 0


def test_a_cluster_that_fits_passes(tmp_path):
    proc = fake_proc(tmp_path, [(5, 0)] * 2)
    provider.check_inotify(19, limit(tmp_path, 128), str(proc), uid=os.geteuid())  # 10 + 6 * 19 = 124


def test_a_cluster_past_the_limit_fails_naming_it_and_the_fix(tmp_path):
    proc = fake_proc(tmp_path, [(5, 0)] * 2)
    with pytest.raises(ConfigError) as err:
        provider.check_inotify(32, limit(tmp_path, 128), str(proc), uid=os.geteuid())
    assert "32 more local node(s) need about 192 inotify instances" in str(err.value)
    assert "fs.inotify.max_user_instances = 128" in str(err.value)
    assert "sysctl -w fs.inotify.max_user_instances=1024" in err.value.hint


def test_an_unreadable_limit_is_not_guessed(tmp_path):
    provider.check_inotify(1000, str(tmp_path / "absent"), str(fake_proc(tmp_path, [])))


def test_no_node_is_made_when_the_check_fails(tmp_path, monkeypatch):
    calls = []

    class Podman(object):
        def run(self, *args, **kwargs):
            calls.append(args)
            raise AssertionError("podman must not be called")
    monkeypatch.setattr(provider, "INOTIFY_LIMIT", limit(tmp_path, 1))
    prov = provider.LocalProvider.__new__(provider.LocalProvider)
    prov._podman = Podman()
    prov.opts = {}
    with pytest.raises(ConfigError):
        prov.create_nodes(spec=None, ranks=[0, 1])
    assert calls == []


def test_a_full_mesh_that_fits_the_neighbour_table_passes(tmp_path):
    provider.check_neighbours(29, limit(tmp_path, 1024))  # 29 * 29 + 128 = 969


def test_a_full_mesh_past_the_neighbour_table_fails_naming_the_sysctls(tmp_path):
    with pytest.raises(ConfigError) as err:
        provider.check_neighbours(32, limit(tmp_path, 1024))
    assert "a job on 32 local nodes connects every node to every other: about 1152 ARP entries" in str(err.value)
    assert "net.ipv4.neigh.default.gc_thresh3 = 1024" in str(err.value)
    assert "net.ipv4.neigh.default.gc_thresh3=4096" in err.value.hint
    assert "net.ipv4.neigh.default.gc_thresh1=1024" in err.value.hint


def test_an_unreadable_neighbour_limit_is_not_guessed(tmp_path):
    provider.check_neighbours(1000, str(tmp_path / "absent"))
