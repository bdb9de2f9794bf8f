"""The firewall says what is open, and only that is open - on aws (moto behind ec2_proxy), gcp and azure (the
doubles, which answer as the services do), in-process through the providers the modules use.

Per cloud: a CIDR dropped from admin_cidrs is revoked on the next run while a rule somebody else added stays; an
unchanged re-run makes no write call and reports changed: false; the calls of a first run and of a re-run are
counted (printed, for the closing note). GCP: the default network's own rules stop the firewall before it changes
anything, naming them, unless allow_network_rules; compact placement's bulkInsert names its policy (the double
refuses a URL, as the discovery document says). Azure: a bring-your-own subnet's NICs carry the cluster's NSG.
The fields each cloud's code sends are a table, checked against the schema text (test_api_fields.py).
"""

from __future__ import annotations

import ipaddress
import json

import boto3
import pytest

from conftest import KEY, run_playbook, unique_name
from arm_double import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT
from cloud_servers import arm, gce, moto, proxy  # noqa: F401  pylint: disable=unused-import
from cloud_servers import arm_env as az_env  # noqa: F401  pylint: disable=unused-import
from ec2_proxy import MUTATING

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import base, reconcile
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws.provider import AwsProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.azure.provider import AzureProvider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, ConfigError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules, normalise_cidrs
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.provider import GcpProvider

A, B, V6 = "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/48"
PUBKEY = open(KEY + ".pub").read().strip()
CALLS = {}


def rules(*cidrs):
    return desired_rules(normalise_cidrs(list(cidrs)))


def record(cloud, what, counts):
    CALLS.setdefault(cloud, {})[what] = dict(sorted(counts.items()))
    print("API calls, %s, %s: %d %s" % (cloud, what, sum(counts.values()), json.dumps(dict(sorted(counts.items())))))


# == gcp ==========================================================================================================
def gcp(double, **opts):
    options = {"credentials_file": double.sa_file, "endpoint_url": double.url,
               "placements": [{"zone": "us-central1-a"}]}
    options.update(opts)
    return GcpProvider(options)


def gcp_writes(double):
    return [e["id"] for e in double.mutations() if not e["id"].endswith("Operations.wait")]


def test_gcp_default_network_is_refused_naming_its_rules_then_the_opt_in_goes_through(gce):
    cluster = unique_name("fwg")
    for check_mode in (True, False):
        with pytest.raises(ConfigError) as err:
            gcp(gce).ensure_firewall(cluster, rules(A), check_mode=check_mode)
        text = str(err.value)
        assert "network default has firewall rules that admit the cluster's nodes from wider than admin_cidrs" in text
        assert "default-allow-ssh (0.0.0.0/0 -> tcp:22)" in text
        assert "default-allow-internal (10.128.0.0/9 -> tcp:0-65535,udp:0-65535,icmp)" in text
        assert "allow_network_rules" in err.value.hint
    assert gcp_writes(gce) == []
    result = gcp(gce, allow_network_rules=True).ensure_firewall(cluster, rules(A))
    made = gce.labelled(cluster)["firewalls"]
    assert result["changed"] and made == ["aiinfra-%s-internal" % cluster, "aiinfra-%s-tcp22" % cluster]
    # a network whose rules are inside admin_cidrs (or for other tags) needs no opt-in
    gce.networks["train"] = gce._network("train")
    for name, ranges, tags in (("office-ssh", [A], None), ("web", ["0.0.0.0/0"], ["web"])):
        gce.firewalls[name] = {"name": name, "network": gce._p("global", "networks", "train"), "priority": 1000,
                               "direction": "INGRESS", "sourceRanges": ranges,
                               "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "disabled": False}
        if tags:
            gce.firewalls[name]["targetTags"] = tags
    assert gcp(gce, network="train").ensure_firewall(unique_name("fwg"), rules(A))["changed"]


def test_gcp_dropped_cidrs_are_revoked_foreign_rules_stay_and_a_rerun_writes_nothing(gce):
    cluster = unique_name("fwg")
    gce.networks["train"] = gce._network("train")
    prov = gcp(gce, network="train")
    gce.calls.clear()
    first = prov.ensure_firewall(cluster, rules(A, B, V6))
    record("gcp", "first run", gce.calls)
    assert first["changed"] and sorted(gce.firewalls["aiinfra-%s-tcp22" % cluster]["sourceRanges"]) == [A, B]
    assert gce.firewalls["aiinfra-%s-tcp22-v6" % cluster]["sourceRanges"] == [V6]

    gce.calls.clear()
    del gce.log[:]
    again = gcp(gce, network="train").ensure_firewall(cluster, rules(A, B, V6))
    record("gcp", "unchanged re-run", gce.calls)
    assert not again["changed"] and gcp_writes(gce) == [] and again["added"] == again["removed"] == []

    # somebody's own rule, by hand, on the cluster's tag: not the collection's to remove
    gce.firewalls["bobs-jupyter"] = {"name": "bobs-jupyter", "network": gce._p("global", "networks", "train"),
                                     "direction": "INGRESS", "priority": 1000, "sourceRanges": [A],
                                     "targetTags": ["aiinfra-%s" % cluster],
                                     "allowed": [{"IPProtocol": "tcp", "ports": ["8888"]}]}
    dropped = gcp(gce, network="train").ensure_firewall(cluster, rules(A))
    assert dropped["changed"] and sorted(dropped["removed"]) == sorted(["ingress tcp:22 from %s" % B,
                                                                        "ingress tcp:22 from %s" % V6])
    assert gce.firewalls["aiinfra-%s-tcp22" % cluster]["sourceRanges"] == [A]
    assert "aiinfra-%s-tcp22-v6" % cluster not in gce.firewalls
    assert "bobs-jupyter" in gce.firewalls
    del gce.log[:]
    assert not gcp(gce, network="train").ensure_firewall(cluster, rules(A))["changed"] and gcp_writes(gce) == []


def test_gcp_compact_placement_names_its_policy_and_public_ip_false_gives_no_external_address(gce):
    cluster = unique_name("fwg")
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="a3-highgpu-8g",
                         image="projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11")
    prov = gcp(gce, public_ip=False)
    prov.preflight(spec)
    launch = reconcile.ensure_present(prov, spec, 2, wait_timeout=60)
    (bulk,) = gce.mutations("compute.instances.bulkInsert")
    props = bulk["body"]["instanceProperties"]
    assert props["resourcePolicies"] == ["aiinfra-%s" % cluster]
    assert "accessConfigs" not in props["networkInterfaces"][0]
    nodes = gcp(gce).list_nodes(cluster)
    assert len(nodes) == 2 and all(n.public_address == "" and n.ssh_host == n.private_address for n in nodes)
    assert all(i["resourcePolicies"][0].endswith("/regions/us-central1/resourcePolicies/aiinfra-%s" % cluster)
               for i in gce.live_instances("aiinfra-gpu-cluster", cluster))
    assert launch


@pytest.mark.parametrize("path, body, message", [
    ("zones/us-central1-a/instances/bulkInsert",
     {"count": "1", "perInstanceProperties": {"x-0": {}}, "instanceProperties": {
         "machineType": "e2-small", "resourcePolicies": ["projects/aiinfra-test/regions/us-central1/resourcePolicies/p"],
         "disks": [{"boot": True, "initializeParams": {
             "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]}},
     "Invalid value for field 'resource.instanceProperties.resourcePolicies[0]'"),
    ("zones/us-central1-a/instances/bulkInsert",
     {"count": "1", "perInstanceProperties": {"x-0": {}}, "instanceProperties": {
         "machineType": "zones/us-central1-a/machineTypes/e2-small"}},
     "Invalid value for field 'resource.instanceProperties.machineType'"),
    ("global/firewalls", {"name": "x", "id": "123", "sourceRanges": [A], "allowed": [{"IPProtocol": "tcp"}]},
     "Invalid value for field 'resource.id': '123'. The field is output only"),
    ("global/firewalls", {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z", "sourceRanges": [A],
                          "allowed": [{"IPProtocol": "tcp"}]}, "resource.creationTimestamp"),
])
def test_gce_double_refuses_what_the_discovery_document_rules_out(gce, path, body, message):
    api = gcp(gce).api
    with pytest.raises(CloudError) as err:
        api.call("POST", api.path(*path.split("/")), body=body, context={"what": "a bad request"})
    assert message in str(err.value) + " " + str(getattr(err.value, "hint", ""))
    assert gce.resource_count() == 0


# == azure ========================================================================================================
def azure(arm, **opts):
    options = {"subscription_id": SUBSCRIPTION, "tenant": TENANT, "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
               "authority_host": arm.url, "endpoint_url": arm.url, "location": "eastus"}
    options.update(opts)
    return AzureProvider(options)


def nsg_of(arm, cluster):
    (nsg,) = arm.in_group("aiinfra-%s" % cluster, "Microsoft.Network/networkSecurityGroups")
    return nsg


def arm_writes(arm):
    """ARM calls that change something (the Entra ID token request is not one)."""
    return sorted(k for k in arm.calls if k.split(" ", 1)[0] in ("PUT", "PATCH", "DELETE", "POST") and k != "POST token")


def test_azure_rerun_is_unchanged_dropped_cidrs_revoked_foreign_rules_stay(arm, az_env):
    cluster = unique_name("fwa")
    arm.reset_counts()
    first = azure(arm).ensure_firewall(cluster, rules(A, B))
    record("azure", "first run", arm.calls)
    assert first["changed"]
    # ARM answers every rule with the list members empty, as recorded
    answer = nsg_of(arm, cluster)["properties"]["securityRules"][0]
    assert answer["properties"]["sourceAddressPrefixes"] == [] and answer["etag"] and answer["type"]

    arm.reset_counts()
    again = azure(arm).ensure_firewall(cluster, rules(A, B))
    record("azure", "unchanged re-run", arm.calls)
    assert not again["changed"] and arm_writes(arm) == []

    # a rule added by hand to the cluster's NSG
    with arm.lock:
        nsg = arm.resources[nsg_of(arm, cluster)["id"].lower()]
        nsg["properties"]["securityRules"].append({
            "name": "bobs-jupyter", "id": nsg["id"] + "/securityRules/bobs-jupyter", "etag": 'W/"1"',
            "type": "Microsoft.Network/networkSecurityGroups/securityRules",
            "properties": {"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 300,
                           "sourcePortRange": "*", "destinationPortRange": "8888", "sourceAddressPrefix": A,
                           "destinationAddressPrefix": "*", "provisioningState": "Succeeded",
                           "sourcePortRanges": [], "destinationPortRanges": [], "sourceAddressPrefixes": [],
                           "destinationAddressPrefixes": []}})
    dropped = azure(arm).ensure_firewall(cluster, rules(A))
    assert dropped["changed"] and dropped["removed"] == ["ingress tcp:22 from %s" % B]
    sources = [(r["name"], r["properties"].get("sourceAddressPrefix")) for r in
               nsg_of(arm, cluster)["properties"]["securityRules"]]
    assert ("bobs-jupyter", A) in sources and not [s for s in sources if s[1] == B]
    arm.reset_counts()
    assert not azure(arm).ensure_firewall(cluster, rules(A))["changed"] and arm_writes(arm) == []


def test_azure_byo_subnet_nics_carry_the_clusters_nsg_or_nothing_is_made(arm, az_env):
    cluster = unique_name("fwa")
    subnet = arm.add_network("byo-%s" % cluster, "byo", "nodes")
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="Standard_D2s_v3",
                         image="canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest")
    prov = azure(arm, subnet_id=subnet, public_ip=False)
    prov.preflight(spec)
    with pytest.raises(ConfigError, match="has no firewall"):
        reconcile.ensure_present(prov, spec, 2, wait_timeout=60)
    assert arm.tagged("aiinfra-gpu-cluster", cluster) == []

    azure(arm).ensure_firewall(cluster, rules(A))
    nsg_id = nsg_of(arm, cluster)["id"]
    reconcile.ensure_present(azure(arm, subnet_id=subnet, public_ip=False), spec, 2, wait_timeout=60)
    nics = arm.in_group("aiinfra-%s" % cluster, "Microsoft.Network/networkInterfaces")
    assert len(nics) == 2
    assert all(n["properties"]["networkSecurityGroup"]["id"].lower() == nsg_id.lower() for n in nics)
    assert all((c["properties"]["subnet"]["id"]).lower() == subnet.lower()
               for n in nics for c in n["properties"]["ipConfigurations"])


def _matches(spec, asgs, who, arm, vnet_id):
    """Whether a rule's address side (``spec``: prefix, or application security groups ``asgs``) covers ``who``: a NIC
    of the double (its private address and groups) or an address on the internet."""
    if asgs:
        return who["nic"] is not None and set(_ref_ids(asgs)) & set(_nic_groups(who["nic"]))
    if spec in ("*", None):
        return True
    inside = who["nic"] is not None and _nic_vnet(who["nic"]) == vnet_id
    if spec == "VirtualNetwork":
        return inside
    if spec == "Internet":
        return not inside
    if spec == "AzureLoadBalancer":
        return False
    return ipaddress.ip_address(who["ip"]) in ipaddress.ip_network(spec, strict=False)


def _ref_ids(refs):
    return [(r.get("id") or "").lower() for r in refs or []]


def _nic_config(nic):
    return (nic["properties"]["ipConfigurations"][0].get("properties")) or {}


def _nic_groups(nic):
    return _ref_ids(_nic_config(nic).get("applicationSecurityGroups"))


def _nic_vnet(nic):
    return _nic_config(nic)["subnet"]["id"].lower().split("/subnets/")[0]


def inbound_allowed(arm, source, dest_nic, port, protocol="tcp"):
    """Azure's evaluation of inbound traffic, as its documentation gives it ("Network security groups: how
    network security groups filter network traffic"): the subnet's NSG, then the NIC's, must both allow it; in each,
    rules (the NSG's and its default rules) in priority order, the first that matches decides."""
    vnet_id = _nic_vnet(dest_nic)
    who = {"nic": source if isinstance(source, dict) else None,
           "ip": _nic_config(source)["privateIPAddress"] if isinstance(source, dict) else source}
    dest = {"nic": dest_nic, "ip": _nic_config(dest_nic)["privateIPAddress"]}
    vnet = arm.resources[vnet_id]
    subnet = [sn for sn in vnet["properties"]["subnets"]
              if sn["id"].lower() == _nic_config(dest_nic)["subnet"]["id"].lower()][0]
    nsgs = [ref for ref in ((subnet.get("properties") or {}).get("networkSecurityGroup"),
                            dest_nic["properties"].get("networkSecurityGroup")) if ref]
    for ref in nsgs:
        nsg = arm.resources[ref["id"].lower()]
        rules = nsg["properties"].get("securityRules", []) + nsg["properties"]["defaultSecurityRules"]
        decided = None
        for rule in sorted(rules, key=lambda r: r["properties"]["priority"]):
            p = rule["properties"]
            if p["direction"] != "Inbound" or p["protocol"].lower() not in ("*", protocol):
                continue
            ports = p.get("destinationPortRange") or "*"
            if ports != "*":
                low, _dash, high = ports.partition("-")
                if not int(low) <= port <= int(high or low):
                    continue
            if not _matches(p.get("sourceAddressPrefix"), p.get("sourceApplicationSecurityGroups"), who, arm,
                            vnet_id):
                continue
            if not _matches(p.get("destinationAddressPrefix"), p.get("destinationApplicationSecurityGroups"), dest,
                            arm, vnet_id):
                continue
            decided = p["access"] == "Allow"
            break
        if not decided:
            return False
    return True


def test_azure_cluster_traffic_is_the_nodes_only_not_the_rest_of_a_shared_subnet(arm, az_env):
    """A subnet of the user's, shared with a colleague's VM: the cluster's nodes reach each other on every port;
    the colleague's VM, in the same subnet, reaches none of them (Azure's own AllowVnetInBound would let it in);
    SSH only from admin_cidrs."""
    cluster = unique_name("fwa")
    subnet = arm.add_network("byo-%s" % cluster, "shared", "team")
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="Standard_D2s_v3",
                         image="canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest")
    azure(arm).ensure_firewall(cluster, rules(A))
    reconcile.ensure_present(azure(arm, subnet_id=subnet, public_ip=False), spec, 2, wait_timeout=60)
    nics = sorted(arm.in_group("aiinfra-%s" % cluster, "Microsoft.Network/networkInterfaces"),
                  key=lambda n: n["name"])
    # a colleague's VM in the same subnet (made by hand, no NSG of its own)
    colleague = {"id": "/x/colleague-nic", "name": "colleague-nic", "type": "Microsoft.Network/networkInterfaces",
                 "location": "eastus", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                     "subnet": {"id": subnet}, "privateIPAddress": "10.77.0.200"}}]}}
    for port in (22, 29500, 40000):
        assert inbound_allowed(arm, nics[0], nics[1], port) and inbound_allowed(arm, nics[1], nics[0], port)
        assert not inbound_allowed(arm, colleague, nics[1], port), port
    assert inbound_allowed(arm, "198.51.100.7", nics[0], 22)
    assert not inbound_allowed(arm, "198.51.100.7", nics[0], 29500)
    assert not inbound_allowed(arm, "203.0.113.5", nics[0], 22)
    # nodes made before the cluster had its group: a firewall re-run makes them members before it narrows the rules
    with arm.lock:
        for nic in nics:
            arm.resources[nic["id"].lower()]["properties"]["ipConfigurations"][0]["properties"].pop(
                "applicationSecurityGroups")
    nics = [arm.resources[nic["id"].lower()] for nic in nics]
    assert not inbound_allowed(arm, nics[0], nics[1], 29500)
    assert azure(arm).ensure_firewall(cluster, rules(A))["changed"]
    nics = sorted(arm.in_group("aiinfra-%s" % cluster, "Microsoft.Network/networkInterfaces"),
                  key=lambda n: n["name"])
    assert inbound_allowed(arm, nics[0], nics[1], 29500) and not inbound_allowed(arm, colleague, nics[1], 29500)
    arm.reset_counts()
    assert not azure(arm).ensure_firewall(cluster, rules(A))["changed"] and arm_writes(arm) == []


# == aws ==========================================================================================================
def aws(proxy):
    return AwsProvider({"region": "us-east-1", "endpoint_url": proxy.url, "access_key": "testing",
                        "secret_key": "testing"})


def aws_writes(proxy):
    return sorted(a for a in proxy.calls if MUTATING.match(a))


def test_aws_dropped_cidrs_are_revoked_foreign_rules_stay_and_a_rerun_writes_nothing(proxy):
    cluster = unique_name("fws")
    proxy.calls.clear()
    first = aws(proxy).ensure_firewall(cluster, rules(A, B, V6))
    record("aws", "first run", proxy.calls)
    assert first["changed"] and first["created"]

    proxy.calls.clear()
    again = aws(proxy).ensure_firewall(cluster, rules(A, B, V6))
    record("aws", "unchanged re-run", proxy.calls)
    assert not again["changed"] and aws_writes(proxy) == []

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=proxy.moto_url, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    ec2.authorize_security_group_ingress(GroupId=first["id"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8888, "ToPort": 8888, "IpRanges": [{"CidrIp": A, "Description": "jupyter"}]}])
    dropped = aws(proxy).ensure_firewall(cluster, rules(A))
    assert dropped["changed"] and sorted(dropped["removed"]) == sorted(["ingress tcp:22 from %s" % B,
                                                                        "ingress tcp:22 from %s" % V6])
    (group,) = ec2.describe_security_groups(GroupIds=[first["id"]])["SecurityGroups"]
    ranges = sorted((p.get("FromPort"), r["CidrIp"]) for p in group["IpPermissions"] for r in p.get("IpRanges", []))
    assert ranges == [(22, A), (8888, A)]
    assert not [r for p in group["IpPermissions"] for r in p.get("Ipv6Ranges", [])]
    proxy.calls.clear()
    assert not aws(proxy).ensure_firewall(cluster, rules(A))["changed"] and aws_writes(proxy) == []
    aws(proxy).delete_firewall(cluster)


# == the union check, a row per cloud of the bad-input table ========================================================
@pytest.mark.parametrize("cidrs", [["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/8", "11.0.0.0/8"], ["2001:db8::/31"]])
def test_union_wider_than_a_slash_8_is_refused_before_any_call(cidrs):
    with pytest.raises(ConfigError, match="opens SSH to"):
        normalise_cidrs(cidrs)
    assert ipaddress.ip_network(cidrs[0])


def test_aws_public_ip_false_launches_nodes_without_a_public_address(proxy):
    cluster = unique_name("fws")
    prov = AwsProvider({"region": "us-east-1", "endpoint_url": proxy.url, "access_key": "testing",
                        "secret_key": "testing", "public_ip": False,
                        "placements": [{"availability_zone": "us-east-1a"}]})
    aws(proxy).ensure_firewall(cluster, rules(A))
    spec = base.NodeSpec(cluster=cluster, ssh_public_key=PUBKEY, instance_type="t3.micro",
                         image="ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*")
    prov.preflight(spec)
    try:
        launch = reconcile.ensure_present(prov, spec, 2, wait_timeout=120)
        nodes = aws(proxy).list_nodes(cluster)
        assert len(nodes) == 2 and all(n.public_address == "" and n.ssh_host == n.private_address for n in nodes)
        assert launch
    finally:
        reconcile.ensure_absent(aws(proxy), cluster, wait_timeout=120)
        aws(proxy).delete_firewall(cluster)


# == through provision.yml: the gcp refusal is a bad input that stops the run with nothing created =================
def test_gcp_provision_on_the_default_network_stops_at_the_firewall_naming_its_rules(gce):
    cluster = unique_name("fwg")
    extra = {
        "gpu_cluster_name": cluster, "gpu_cluster_size": 1, "gpu_cluster_instance_type": "e2-small",
        "gpu_cluster_image": "projects/debian-cloud/global/images/family/debian-12",
        "gpu_cluster_admin_cidrs": [A], "gpu_cluster_ssh_private_key_file": KEY, "gpu_cluster_wait_timeout": 60,
        "gpu_cluster_cloud_options": {"region": "us-central1", "endpoint_url": gce.url},
        "gpu_cluster_instance_options": {"placements": [{"zone": "us-central1-a"}]},
    }
    proc = run_playbook("playbooks/provision.yml", extra_vars=extra, inventory="inventories/gcp", timeout=300,
                        env={"GCP_SERVICE_ACCOUNT_FILE": gce.sa_file, "GPU_CLUSTER_NAME": cluster}, check=False)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "network default has firewall rules that admit the cluster's nodes from wider than admin_cidrs" in out
    assert "default-allow-ssh (0.0.0.0/0 -> tcp:22)" in out and "default-allow-internal" in out
    assert "allow_network_rules" in out
    assert gce.resource_count() == 0 and gcp_writes(gce) == []
