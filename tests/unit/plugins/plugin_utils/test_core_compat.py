"""The one adapter over ansible-core internals: it knows exactly the versions meta/runtime.yml claims, refuses
any other clearly, and opens a connection with the host's own options on the running ansible-core (CI runs this
file on the highest and on the lowest ansible-core claimed)."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.release import __version__
from ansible.template import Templar
from packaging.specifiers import SpecifierSet

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import core_compat

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_known_versions_are_exactly_what_runtime_yml_claims():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        claim = SpecifierSet(yaml.safe_load(handle)["requires_ansible"])
    (low_major, low_minor), (high_major, high_minor) = core_compat.KNOWN
    assert "%d.%d.0" % (low_major, low_minor) in claim
    assert "%d.%d.99" % (high_major, high_minor) in claim
    assert "%d.%d.99" % (low_major, low_minor - 1) not in claim
    assert "%d.%d.0" % (high_major, high_minor + 1) not in claim
    assert "%d.%d.0" % (high_major, high_minor + 1) not in claim


def test_the_running_ansible_core_is_known():
    assert core_compat.require_known("torchrun_watch") == core_compat.core_version(__version__)


@pytest.mark.parametrize("version", ["2.15.13", "2.20.0", "2.21.0rc1", "3.0.0"])
def test_an_unknown_version_fails_with_a_clear_message(version):
    with pytest.raises(core_compat.UnsupportedCore) as err:
        core_compat.require_known("torchrun_watch", version)
    text = str(err.value)
    assert "torchrun_watch: ansible-core %s is not a version aiinfra.gpu_cluster knows" % version in text
    assert "2.16 to 2.19" in text


@pytest.mark.parametrize("version", ["2.16.0", "2.16.19", "2.17.4", "2.18.1", "2.19.14"])
def test_known_versions(version):
    assert core_compat.require_known("x", version) == tuple(int(p) for p in version.split(".")[:2])


class FakeAction(object):
    """What host_connection reads from the running action plugin: a real play context, task and templar."""

    def __init__(self):
        self._play_context = PlayContext()
        self._play_context.connection = "ssh"
        self._task = Task()
        self._templar = Templar(loader=DataLoader())


def test_host_connection_takes_the_hosts_own_options():
    hostvars = {"node-1": {"ansible_host": "10.0.0.7", "ansible_port": 2222, "ansible_user": "trainer",
                           "ansible_ssh_common_args": "-o StrictHostKeyChecking=no",
                           "ansible_ssh_private_key_file": "/keys/id", "ansible_connection": "ssh",
                           "ansible_ssh_extra_args": "-o ConnectTimeout=3"}}
    conn = core_compat.host_connection(FakeAction(), "node-1", {"hostvars": hostvars})
    assert conn._load_name in ("ssh", "ansible.builtin.ssh")
    assert conn.get_option("host") == "10.0.0.7"
    assert int(conn.get_option("port")) == 2222
    assert conn.get_option("remote_user") == "trainer"
    assert conn.get_option("private_key_file") == "/keys/id"
    assert conn.get_option("ssh_common_args") == "-o StrictHostKeyChecking=no"
    assert conn.get_option("ssh_extra_args") == "-o ConnectTimeout=3"
    assert conn.become is None


def test_host_connection_runs_a_command():
    conn = core_compat.host_connection(FakeAction(), "here", {"hostvars": {"here": {"ansible_connection": "local"}}})
    try:
        rc, out, _err = conn.exec_command("/bin/sh -c 'echo polled'", sudoable=False)
    finally:
        conn.close()
    assert rc == 0 and out.strip() == b"polled"


def test_the_216_path_builds_what_the_running_core_builds():
    """2.17+ resolves option variables in the connection; the 2.16 path must give the same options."""
    conn = core_compat.host_connection(FakeAction(), "h", {"hostvars": {"h": {"ansible_connection": "ssh"}}})
    variables = {"ansible_host": "10.1.1.1", "ansible_port": 22, "ansible_ssh_args": "-o A=b", "unrelated": 1,
                 "ansible_user": "u"}
    templar = Templar(loader=DataLoader())
    mine = core_compat._option_variables_216(conn, variables, templar)
    assert mine["ansible_host"] == "10.1.1.1" and mine["ansible_ssh_args"] == "-o A=b" and "unrelated" not in mine
    if hasattr(conn, "_resolve_option_variables"):
        assert mine == conn._resolve_option_variables(variables, templar)
    else:
        assert core_compat.core_version() == (2, 16)
