# -*- coding: utf-8 -*-
"""Each cloud's options are declared once: the argument specs, the refusal of another cloud's options, the
inventory plugin's options and the doc fragments all come from the declarations."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import options, providers
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import firewall_argument_spec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.module import (
    cluster_argument_spec, instance_argument_spec)


def test_doc_fragments_are_what_the_declarations_give():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "gen_cloud_docs.py")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_changed_declaration_is_drift():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        import gen_cloud_docs  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    before = gen_cloud_docs.sources()
    aws = providers.PROVIDERS["aws"]
    changed = options.Cloud("aws", aws.cloud.options + (options.Option("ttl", ("Hours to live.",), type="int",
                                                                       scope="instance"),),
                            aws.cloud.requirements)
    after = gen_cloud_docs.sources(tuple(changed if c.name == "aws" else c for c in providers.CLOUDS))
    assert [p for p in after if after[p] != before[p]] == [os.path.join(ROOT, "plugins", "doc_fragments", "aws.py")]
    assert "  ttl:\n" in after[os.path.join(ROOT, "plugins", "doc_fragments", "aws.py")]


def test_every_declared_option_is_in_a_module_spec_and_only_there():
    declared = set(name for cloud in providers.CLOUDS for name in cloud.names)
    specs = set(instance_argument_spec()) | set(firewall_argument_spec())
    assert declared <= specs
    # the modules' own options are no cloud's
    assert not declared & {"cloud", "cluster", "count", "image", "state", "owner", "labels", "admin_cidrs"}


def test_shared_options_are_one_spec_entry_with_every_clouds_suboptions():
    spec = instance_argument_spec()
    assert sorted(spec["placements"]["options"]) == sorted(
        ["subnet_id", "availability_zone", "instance_type", "location", "zone"])
    assert spec["region"] == {"type": "str"}
    assert spec["secret_key"]["no_log"] is True and spec["access_key"]["no_log"] is False
    assert spec["accelerators"]["options"]["type"]["required"] is True
    assert "podman_conf" in cluster_argument_spec() and "podman_conf" not in firewall_argument_spec()
    assert "vpc_id" in firewall_argument_spec() and "vpc_id" not in instance_argument_spec()


def test_declarations_of_one_option_must_agree():
    one = options.Cloud("one", (options.Option("size", ("a",), type="int"),))
    two = options.Cloud("two", (options.Option("size", ("b",), type="str"),))
    with pytest.raises(ValueError, match="size is declared with different types by one, two"):
        options.argument_spec((one, two), ("cluster",))


@pytest.mark.parametrize("cloud, params, message", [
    ("local", {"region": "us-east-1"}, "region belongs to cloud aws and gcp"),
    ("gcp", {"key_name": "k", "subnet_id": "s"}, "key_name belongs to cloud aws; subnet_id belongs to cloud azure"),
    ("aws", {"resource_group": "rg"}, "resource_group belongs to cloud azure"),
])
def test_another_clouds_option_is_refused_naming_its_cloud(cloud, params, message):
    spec = instance_argument_spec()
    full = dict((name, entry.get("default")) for name, entry in spec.items())
    full.update(params, cloud=cloud)
    got = options.foreign_options(cloud, full, providers.CLOUDS, spec)
    assert message in got and "do not apply to cloud %r" % cloud in got


def test_defaults_and_shared_options_are_not_foreign():
    spec = instance_argument_spec()
    full = dict((name, entry.get("default")) for name, entry in spec.items())
    full.update(cloud="aws", region="us-east-1", placements=[{"subnet_id": "s"}], ssh_access="auto")
    assert options.foreign_options("aws", full, providers.CLOUDS, spec) is None
    assert providers.cloud_options("aws", full, spec)["region"] == "us-east-1"


def _run_module(module, args):
    """Run a module the way Ansible does (arguments as JSON on stdin); its result."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.aiinfra.gpu_cluster.plugins.modules." + module],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True,
                          env=env, check=False)
    return json.loads(proc.stdout)


def test_the_module_refuses_it_in_argument_validation():
    """Before any provider is built (cloud aws without boto3 credentials would fail later, and differently)."""
    result = _run_module("instance_info", {"cloud": "local", "cluster": "cloud-opts", "region": "us-east-1"})
    assert result["failed"] is True
    assert "region belongs to cloud aws and gcp" in result["msg"]
    assert "do not apply to cloud 'local'" in result["msg"]


def test_inventory_options_come_from_the_declarations():
    assert providers.inventory_options("local") == ["podman_conf", "ssh_access"]
    assert providers.inventory_options("aws") == ["region", "endpoint_url", "access_key", "secret_key",
                                                  "session_token", "profile"]
    assert "network" in providers.inventory_options("gcp") and "subnetwork" not in providers.inventory_options("gcp")


def test_every_providers_methods_have_the_base_class_signatures():
    import inspect  # pylint: disable=import-outside-toplevel
    from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import Provider  # noqa: E501 pylint: disable=import-outside-toplevel
    drifted = []
    for name, cls in sorted(providers.PROVIDERS.items()):
        for attr, base in vars(Provider).items():
            if attr.startswith("__") or not callable(base):
                continue
            if inspect.signature(getattr(cls, attr)) != inspect.signature(base):
                drifted.append("%s.%s%s" % (name, attr, inspect.signature(getattr(cls, attr))))
    assert drifted == []
