"""The firewall says what is open, and only that: the union of admin_cidrs, the collection's own rules vs others',
ARM's answers compared by what a request sets, GCP's network rules that admit the nodes anyway."""

from __future__ import annotations

import pytest

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import local
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure import shapes as azure_shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules, normalise_cidrs
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp import shapes as gcp_shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.firewall import wider_rules
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.rules import made_by_us


# -- the union of admin_cidrs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cidrs, message", [
    (["0.0.0.0/0"], "whole internet"),
    (["::/0"], "whole internet"),
    (["0.0.0.0/1", "128.0.0.0/1"], "whole internet (0.0.0.0/0)"),
    (["10.0.0.0/8", "11.0.0.0/8"], "more than a /8 of IPv4 addresses (together 10.0.0.0/7)"),
    (["10.0.0.0/7"], "more than a /8 of IPv4"),
    (["10.0.0.0/8", "192.168.0.0/16"], "more than a /8 of IPv4"),
    (["2001:db8::/31"], "more than a /32 of IPv6"),
    (["2001:db8::/32", "2001:db9::/32"], "more than a /32 of IPv6"),
])
def test_admin_networks_wider_than_a_slash_8_together_need_the_opt_in(cidrs, message):
    with pytest.raises(ConfigError, match="opens SSH to") as err:
        normalise_cidrs(cidrs)
    assert message in str(err.value)
    assert "allow_ssh_from_anywhere" in err.value.hint
    assert normalise_cidrs(cidrs, allow_world=True)


@pytest.mark.parametrize("cidrs", [["10.0.0.0/8"], ["203.0.113.0/24", "198.51.100.0/24"],
                                   ["10.0.0.0/9", "10.128.0.0/9"], ["2001:db8::/32", "10.0.0.0/8"]])
def test_a_slash_8_in_total_is_allowed(cidrs):
    assert normalise_cidrs(cidrs) == cidrs


# -- whose rules --------------------------------------------------------------------------------------------------
def test_the_collections_rules_are_known_by_their_description():
    assert all(made_by_us(r) for r in desired_rules(["203.0.113.0/24"]))
    assert not made_by_us(RuleSpec("ingress", "tcp", 8888, 8888, "10.0.0.0/8", "jupyter for Bob"))
    assert not made_by_us(RuleSpec("ingress", "tcp", 22, 22, "10.0.0.0/8", ""))


# -- ARM answers compared by what a request sets ------------------------------------------------------------------
def arm_answer(rules, nsg_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n"):
    """Security rules as ARM answers them (azure-sdk-for-python's recording test_network_security_groups.yaml)."""
    out = []
    for rule in rules:
        props = dict(rule["properties"], provisioningState="Succeeded", sourcePortRanges=[], destinationPortRanges=[],
                     sourceAddressPrefixes=[], destinationAddressPrefixes=[])
        out.append({"name": rule["name"], "id": "%s/securityRules/%s" % (nsg_id, rule["name"]),
                    "etag": 'W/"60a7368c-53cc-4e24-b671-59b82eea9e8e"',
                    "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": props})
    props = {"provisioningState": "Succeeded", "securityRules": out, "resourceGuid": "4846e8a0-f510-49d1-9a38-5f4f7ed29657"}
    return {"id": nsg_id, "etag": 'W/"x"', "properties": props}


ASG = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/applicationSecurityGroups/c-asg-eastus"


def test_an_nsg_as_arm_answers_it_is_the_same_as_the_rules_sent():
    wanted = azure_shapes.nsg_rules(desired_rules(["203.0.113.0/24"]), ASG)
    assert azure_shapes.same_rules(arm_answer(wanted), wanted)


def test_a_real_difference_is_still_a_difference():
    wanted = azure_shapes.nsg_rules(desired_rules(["203.0.113.0/24"]), ASG)
    other = azure_shapes.nsg_rules(desired_rules(["198.51.100.0/24"]), ASG)
    assert not azure_shapes.same_rules(arm_answer(other), wanted)
    listed = arm_answer(wanted)
    listed["properties"]["securityRules"][0]["properties"]["sourceAddressPrefixes"] = ["192.0.2.0/24"]
    assert not azure_shapes.same_rules(listed, wanted)


# -- GCP: bulkInsert takes resource policy names -------------------------------------------------------------------
def test_bulk_insert_names_the_resource_policy():
    spec = type("S", (), {"cluster": "c1", "ssh_public_key": "", "ssh_user": "u", "tags": lambda self, r=None: {}})()
    res = {"machine_type": "a3-highgpu-8g", "image": "projects/p/global/images/i", "network": "projects/p/global/"
           "networks/default", "gpus": 8}
    body = gcp_shapes.bulk_insert_body(spec, [0], "us-central1-a", res, 1,
                                       "projects/p/regions/us-central1/resourcePolicies/aiinfra-c1")
    assert body["instanceProperties"]["resourcePolicies"] == ["aiinfra-c1"]
    assert body["instanceProperties"]["networkInterfaces"][0]["accessConfigs"]
    res["public_ip"] = False
    body = gcp_shapes.bulk_insert_body(spec, [0], "us-central1-a", res, 1, None)
    assert "accessConfigs" not in body["instanceProperties"]["networkInterfaces"][0]


# -- GCP: the network's own rules ----------------------------------------------------------------------------------
NET = "https://compute.googleapis.com/compute/v1/projects/p/global/networks/default"


def fw(name, ranges, targets=None, allowed=None, **extra):
    out = {"name": name, "network": NET, "direction": "INGRESS", "sourceRanges": ranges,
           "allowed": allowed or [{"IPProtocol": "tcp", "ports": ["22"]}], "disabled": False}
    if targets:
        out["targetTags"] = targets
    out.update(extra)
    return out


@pytest.mark.parametrize("rule, flagged", [
    (fw("default-allow-ssh", ["0.0.0.0/0"]), True),
    (fw("default-allow-internal", ["10.128.0.0/9"], allowed=[{"IPProtocol": "icmp"}]), True),
    (fw("office", ["203.0.113.0/25"]), False),
    (fw("for-others", ["0.0.0.0/0"], targets=["web"]), False),
    (fw("for-us", ["0.0.0.0/0"], targets=["aiinfra-c1"]), True),
    (fw("off", ["0.0.0.0/0"], disabled=True), False),
    (fw("egress", ["0.0.0.0/0"], direction="EGRESS"), False),
    (fw("deny", ["0.0.0.0/0"], allowed=None, denied=[{"IPProtocol": "all"}]) | {"allowed": []}, False),
    (fw("other-net", ["0.0.0.0/0"], network=NET.replace("default", "other")), False),
    (fw("by-sa", ["0.0.0.0/0"], targetServiceAccounts=["x@p.iam.gserviceaccount.com"]), False),
    (fw("tags-only", [], sourceTags=["bastion"]), False),
])
def test_network_rules_wider_than_admin_cidrs(rule, flagged):
    found = wider_rules([rule], "default", "c1", ["203.0.113.0/24"])
    assert bool(found) == flagged
    if flagged:
        assert found[0].startswith(rule["name"] + " (")


# -- local: nothing is open beyond loopback and the cluster's own podman network ---------------------------------
class RecordingPodman(object):
    def __init__(self):
        self.calls = []

    def run(self, *args, **kwargs):
        self.calls.append(args)
        return ""


@pytest.mark.parametrize("access", ["published", "address"])
def test_local_nodes_publish_ssh_on_loopback_only(access):
    provider = local.LocalProvider({"ssh_access": access})
    provider._podman = RecordingPodman()
    spec = type("S", (), {"cluster": "c1", "ssh_user": "u", "ssh_public_key": "k", "instance_type": "",
                          "tags": lambda self, r=None: {"aiinfra-gpu-cluster": "c1"}})()
    provider._run_node(spec, 0, "img", "aiinfra-c1")
    run = provider._podman.calls[0]
    published = [run[i + 1] for i, a in enumerate(run) if a in ("-p", "--publish")]
    assert "-P" not in run and "--publish-all" not in run and "--network=host" not in run
    assert run[run.index("--network") + 1] == "aiinfra-c1"
    assert published == (["127.0.0.1::22"] if access == "published" else [])


def test_local_has_no_firewall_to_open():
    # (by name: other unit tests reload the errors module, so the class object may be another copy)
    with pytest.raises(Exception, match="the firewall is not supported on cloud 'local'") as err:
        local.LocalProvider({}).ensure_firewall("c1", desired_rules(["203.0.113.0/24"]))
    assert type(err.value).__name__ == "ConfigError"
