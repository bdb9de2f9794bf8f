"""The aws provider's pure logic (classification, tokens, EFA layout, placements, rules) and its launch
decisions against a fake EC2 client (failover, quota fail-fast, retries with the same token)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws import errors as aws_errors
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws import provider as aws_provider
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.aws import shapes as aws_shapes
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.base import NodeSpec, RuleSpec
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, ConfigError, NotFoundError, QuotaError, TransientError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.firewall import desired_rules, normalise_cidrs

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0v8Xw9V3c1Yx3b9bqzY4f1m1dJmXb8nCw7n1kq0aZ1 user@host"


def client_error(code, message="boom", status=400, op="RunInstances"):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


# -- classification -------------------------------------------------------------
@pytest.mark.parametrize("exc, kind", [
    (client_error("InsufficientInstanceCapacity", status=500), "capacity"),  # a 500, but not retried in place
    (client_error("Unsupported"), "capacity"),
    (client_error("InsufficientFreeAddressesInSubnet"), "capacity"),
    (client_error("VcpuLimitExceeded"), "quota"),
    (client_error("MaxSpotInstanceCountExceeded"), "quota"),
    (client_error("RequestLimitExceeded", status=503), "transient"),
    (client_error("Unavailable", status=503), "transient"),
    (client_error("SomethingNew", status=502), "transient"),
    (client_error("InternalError", status=500), "transient"),
    (client_error("AuthFailure", status=401), "config"),
    (client_error("UnauthorizedOperation", status=403), "config"),
    (client_error("InvalidAMIID.NotFound"), "not_found"),
    (client_error("InvalidSubnetID.NotFound"), "not_found"),
    (client_error("InvalidPlacementGroup.Unknown"), "not_found"),
    (client_error("InvalidParameterValue"), "config"),
    (client_error("IdempotentParameterMismatch"), "config"),
    (NoCredentialsError(), "config"),
    (EndpointConnectionError(endpoint_url="http://x"), "transient"),
    (ReadTimeoutError(endpoint_url="http://x"), "transient"),
])
def test_classify(exc, kind):
    err = aws_errors.classify(exc)
    assert err.kind == kind
    assert err.retryable == (kind == "transient")


def test_classify_unknown_exception_propagates():
    assert aws_errors.classify(KeyError("x")) is None


def test_not_found_right_after_create_is_eventual_consistency():
    err = aws_errors.classify(client_error("InvalidInstanceID.NotFound"), {"just_created": True})
    assert isinstance(err, TransientError)
    assert isinstance(aws_errors.classify(client_error("InvalidInstanceID.NotFound")), NotFoundError)


@pytest.mark.parametrize("itype, spot, name, code", [
    ("p4d.24xlarge", False, "Running On-Demand P instances", "L-417A185B"),
    ("p5.48xlarge", True, "All P Spot Instance Requests", "L-7212CCBC"),
    ("g5.12xlarge", False, "Running On-Demand G and VT instances", "L-DB2E81BA"),
    ("trn1.32xlarge", False, "Running On-Demand Trn instances", None),
    ("dl1.24xlarge", False, "Running On-Demand DL instances", None),
    ("m5.large", False, "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A"),
])
def test_vcpu_quota_names_the_quota(itype, spot, name, code):
    assert aws_errors.vcpu_quota(itype, spot) == (name, code)


def test_quota_error_message_names_quota_and_need():
    err = aws_errors.classify(client_error("VcpuLimitExceeded", "You have requested more vCPU capacity"),
                              {"instance_type": "p4d.24xlarge", "count": 8, "vcpus": 768, "region": "us-east-1"})
    assert isinstance(err, QuotaError)
    text = str(err)
    assert "'Running On-Demand P instances' (L-417A185B)" in text
    assert "8 x p4d.24xlarge = 768 vCPUs" in text and "us-east-1" in text and "Service Quotas" in text


# -- tokens, ranks ----------------------------------------------------------------
def test_client_token_is_derived_and_changes_with_the_request():
    request = {"InstanceType": "p4d.24xlarge", "ImageId": "ami-1", "Placement": {"AvailabilityZone": "a"}}
    token = aws_shapes.client_token("c1", [0, 1], request)
    assert token == aws_shapes.client_token("c1", [0, 1], dict(request))  # a re-run computes the same token
    assert token.startswith("aiinfra-") and len(token) <= 64
    others = [
        aws_shapes.client_token("c2", [0, 1], request),
        aws_shapes.client_token("c1", [0, 1, 2], request),
        aws_shapes.client_token("c1", [0, 1], dict(request, Placement={"AvailabilityZone": "b"})),
        aws_shapes.client_token("c1", [0, 1], request, generation=1),
    ]
    assert len(set(others + [token])) == 5


@pytest.mark.parametrize("ranks, text", [
    ([0, 1, 2, 3, 4, 5, 6, 7], "0-7"),
    ([2, 5, 9, 10, 11, 12], "2,5,9-12"),
    ([3], "3"),
    ([], ""),
])
def test_ranks_round_trip(ranks, text):
    assert aws_shapes.format_ranks(ranks) == text
    assert aws_shapes.parse_ranks(text) == ranks


def test_rank_of_prefers_rank_tag_then_launch_index():
    assert aws_shapes.rank_of({"aiinfra-gpu-rank": "5", "aiinfra-gpu-ranks": "0-7"}, 0) == 5
    assert aws_shapes.rank_of({"aiinfra-gpu-ranks": "2,5,9-12"}, 3) == 10
    assert aws_shapes.rank_of({"aiinfra-gpu-ranks": "0-1"}, 5) == aws_shapes.UNRANKED
    assert aws_shapes.rank_of({"aiinfra-gpu-ranks": "bogus"}, 0) == aws_shapes.UNRANKED


# -- EFA layout --------------------------------------------------------------------
def card(index, kinds):
    return {"NetworkCardIndex": index, "InterfaceTypes": kinds}


@pytest.mark.parametrize("info, layout", [
    ({"NetworkInfo": {"EfaSupported": False, "NetworkCards": [card(0, ["interface"])]}}, []),
    ({"NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 1},
                      "NetworkCards": [card(0, ["interface", "efa"])]}}, [(0, 0, "efa")]),
    # p4d: four cards, efa-only on the others
    ({"NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 4},
                      "NetworkCards": [card(i, ["interface", "efa", "efa-only"]) for i in (3, 1, 0, 2)]}},
     [(0, 0, "efa"), (1, 1, "efa-only"), (2, 1, "efa-only"), (3, 1, "efa-only")]),
    # a limit below the number of cards; a card without efa-only gets plain efa; one with no EFA is skipped
    ({"NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 3},
                      "NetworkCards": [card(0, ["efa"]), card(1, ["interface"]), card(2, ["efa"]), card(3, ["efa-only"]),
                                       card(4, ["efa-only"])]}},
     [(0, 0, "efa"), (2, 1, "efa"), (3, 1, "efa-only")]),
])
def test_efa_layout(info, layout):
    assert aws_shapes.efa_layout(info) == layout


# -- placements --------------------------------------------------------------------
SUBNETS = {"subnet-a2": {"availability_zone": "us-east-1a", "vpc_id": "vpc-1"},
           "subnet-b2": {"availability_zone": "us-east-1b", "vpc_id": "vpc-1"}}
DEFAULTS = {"us-east-1b": {"subnet_id": "subnet-bd", "vpc_id": "vpc-d"},
            "us-east-1a": {"subnet_id": "subnet-ad", "vpc_id": "vpc-d"}}


def tries(result):
    return [(t["subnet_id"], t["availability_zone"], t["instance_type"]) for t in result]


def test_placements_in_the_order_given_with_alternative_types():
    placements = [{"subnet_id": "subnet-b2"}, {"availability_zone": "us-east-1a"},
                  {"subnet_id": "subnet-b2", "instance_type": "p5.48xlarge"}]
    assert tries(aws_shapes.plan_placements(placements, "p4d.24xlarge", SUBNETS, DEFAULTS)) == [
        ("subnet-b2", "us-east-1b", "p4d.24xlarge"), ("subnet-ad", "us-east-1a", "p4d.24xlarge"),
        ("subnet-b2", "us-east-1b", "p5.48xlarge")]


def test_no_placements_means_every_default_subnet_in_zone_order_once():
    assert tries(aws_shapes.plan_placements([], "p4d.24xlarge", SUBNETS, DEFAULTS)) == [
        ("subnet-ad", "us-east-1a", "p4d.24xlarge"), ("subnet-bd", "us-east-1b", "p4d.24xlarge")]
    # a type-only entry expands the same way, duplicates collapse
    assert len(aws_shapes.plan_placements([{}, {"instance_type": None}], "x", SUBNETS, DEFAULTS)) == 2


def test_existing_nodes_pin_new_ones_to_their_zone():
    placements = [{"availability_zone": "us-east-1a"}, {"availability_zone": "us-east-1b"}]
    assert tries(aws_shapes.plan_placements(placements, "t", SUBNETS, DEFAULTS, existing_zone="us-east-1b")) == [
        ("subnet-bd", "us-east-1b", "t")]
    with pytest.raises(ConfigError, match="nodes are in us-east-1c"):
        aws_shapes.plan_placements(placements, "t", SUBNETS, DEFAULTS, existing_zone="us-east-1c")


def test_placement_errors():
    with pytest.raises(ConfigError, match="no default subnet in availability zone us-east-1f"):
        aws_shapes.plan_placements([{"availability_zone": "us-east-1f"}], "t", SUBNETS, DEFAULTS)
    with pytest.raises(ConfigError, match="is in us-east-1a, not us-east-1b"):
        aws_shapes.plan_placements([{"subnet_id": "subnet-a2", "availability_zone": "us-east-1b"}], "t", SUBNETS, DEFAULTS)
    with pytest.raises(ConfigError, match="no default VPC"):
        aws_shapes.plan_placements([], "t", SUBNETS, {})


# -- images, user data, key names, nodes --------------------------------------------
def test_newest_image_of_a_supported_architecture():
    images = [
        {"ImageId": "ami-1", "Name": "dl 2024-01", "CreationDate": "2024-01-01T00:00:00Z", "Architecture": "x86_64"},
        {"ImageId": "ami-2", "Name": "dl 2024-06", "CreationDate": "2024-06-01T00:00:00Z", "Architecture": "x86_64"},
        {"ImageId": "ami-3", "Name": "dl 2025-01", "CreationDate": "2025-01-01T00:00:00Z", "Architecture": "arm64"},
        {"ImageId": "ami-4", "Name": "dl 2026-01", "CreationDate": "2026-01-01T00:00:00Z", "Architecture": "x86_64",
         "State": "pending"},
    ]
    assert aws_shapes.newest_image(images, {"x86_64"})["ImageId"] == "ami-2"
    assert aws_shapes.newest_image(images)["ImageId"] == "ami-3"
    assert aws_shapes.newest_image(images, {"riscv"}) is None


def test_cloud_config_renames_the_default_user():
    text = aws_shapes.cloud_config("gpuadmin", PUBKEY)
    assert text.startswith("#cloud-config\n")
    assert 'name: "gpuadmin"' in text and "NOPASSWD:ALL" in text and PUBKEY in text


def test_key_pair_name_follows_the_key():
    name = aws_shapes.key_pair_name("c1", PUBKEY)
    assert name == aws_shapes.key_pair_name("c1", PUBKEY.replace("user@host", "other comment"))
    assert name != aws_shapes.key_pair_name("c1", PUBKEY.replace("aZ1", "aZ2"))
    assert name.startswith("aiinfra-c1-")


def test_node_from_instance():
    inst = {"InstanceId": "i-1", "AmiLaunchIndex": 2, "State": {"Name": "running"}, "InstanceType": "p4d.24xlarge",
            "PrivateIpAddress": "10.0.0.5", "Placement": {"AvailabilityZone": "us-east-1b"},
            "Tags": [{"Key": "aiinfra-gpu-ranks", "Value": "4-7"}, {"Key": "aiinfra-gpu-ssh-user", "Value": "gpuadmin"},
                     {"Key": "team", "Value": "llm"}, {"Key": "Name", "Value": "c1"}]}
    node = aws_shapes.node_from_instance(inst, "c1")
    got = (node.rank, node.name, node.ssh_host, node.ssh_user, node.zone)
    assert got == (6, "c1-6", "10.0.0.5", "gpuadmin", "us-east-1b")
    assert node.labels == {"team": "llm"}
    inst["PublicIpAddress"] = "54.1.2.3"
    assert aws_shapes.node_from_instance(inst, "c1").ssh_host == "54.1.2.3"


# -- firewall rules ------------------------------------------------------------------
def test_rules_round_trip_through_ec2_permissions():
    rules = desired_rules(["203.0.113.0/24", "2001:db8::/48"], 22)
    ingress = [r for r in rules if r.direction == "ingress"]
    egress = [r for r in rules if r.direction == "egress"]
    group = {"GroupId": "sg-1", "IpPermissions": aws_shapes.permissions_from_rules(ingress, "sg-1"),
             "IpPermissionsEgress": aws_shapes.permissions_from_rules(egress, "sg-1")}
    assert sorted(map(str, aws_shapes.rules_from_group(group))) == sorted(map(str, rules))
    assert set(aws_shapes.rules_from_group(group)) == set(rules)


def test_desired_rules_are_ssh_from_admins_and_self_reference():
    rules = [str(r) for r in desired_rules(["203.0.113.0/24"], 2222)]
    assert rules == ["ingress tcp:2222 from 203.0.113.0/24", "ingress all from self", "egress all to self",
                     "egress all to 0.0.0.0/0"]


def test_rule_description_does_not_count():
    assert RuleSpec("ingress", "tcp", 22, 22, "10.0.0.0/8", "a") == RuleSpec("ingress", "tcp", 22, 22, "10.0.0.0/8", "b")


@pytest.mark.parametrize("cidrs, world, message", [
    ([], False, "admin_cidrs is required"),
    (["10.0.0.300/24"], False, "is not a CIDR"),
    (["10.1.2.3/16"], False, "Did you mean 10.1.0.0/16"),
    (["10.1.2.3"], False, "has no prefix length"),
    (["0.0.0.0/0"], False, "whole internet"),
    (["::/0"], False, "whole internet"),
])
def test_bad_admin_cidrs(cidrs, world, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        normalise_cidrs(cidrs, world)


def test_good_admin_cidrs():
    cidrs = normalise_cidrs([" 203.0.113.0/24", "203.0.113.0/24", "2001:db8::/48"])
    assert cidrs == ["203.0.113.0/24", "2001:db8::/48"]
    assert normalise_cidrs(["0.0.0.0/0"], allow_world=True) == ["0.0.0.0/0"]


# -- launch decisions against a fake EC2 ------------------------------------------------
P4D = {"InstanceType": "p4d.24xlarge", "VCpuInfo": {"DefaultVCpus": 96},
       "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
       "PlacementGroupInfo": {"SupportedStrategies": ["cluster", "spread"]},
       "NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 4},
                       "NetworkCards": [card(i, ["interface", "efa", "efa-only"]) for i in range(4)]}}


class _Meta(object):
    region_name = "us-east-1"


class FakeEC2(object):
    """Answers the calls a launch makes; ``run_results`` is a list of exceptions / None (success) in call order."""

    meta = _Meta()

    def __init__(self, run_results):
        self.run_results = list(run_results)
        self.runs = []
        self.calls = []

    def __getattr__(self, name):
        def call(**params):
            self.calls.append(name)
            return getattr(self, "_" + name)(**params)
        return call

    def _describe_instance_types(self, InstanceTypes):
        return {"InstanceTypes": [P4D]}

    def _describe_images(self, **params):
        return {"Images": [{"ImageId": "ami-0123456789abcdef0", "Architecture": "x86_64", "RootDeviceName": "/dev/sda1",
                            "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 50}}]}]}

    def _describe_subnets(self, **params):
        return {"Subnets": [{"SubnetId": "subnet-%s" % z, "AvailabilityZone": "us-east-1%s" % z, "VpcId": "vpc-1"}
                            for z in "ab"]}

    def _describe_instance_type_offerings(self, **params):
        return {"InstanceTypeOfferings": [{"InstanceType": "p4d.24xlarge", "Location": "us-east-1%s" % z}
                                          for z in "ab"]}

    def _describe_security_groups(self, **params):
        return {"SecurityGroups": [{"GroupId": "sg-1", "GroupName": "aiinfra-c1", "VpcId": "vpc-1"}]}

    def _describe_key_pairs(self, **params):
        return {"KeyPairs": []}

    def _describe_placement_groups(self, **params):
        return {"PlacementGroups": []}

    def _import_key_pair(self, **params):
        return {}

    def _create_placement_group(self, **params):
        return {}

    def _create_tags(self, **params):
        return {}

    def _run_instances(self, **params):
        self.runs.append(params)
        outcome = self.run_results.pop(0)
        if outcome is not None:
            raise outcome
        return {"ReservationId": "r-1", "Instances": [
            {"InstanceId": "i-%d" % i, "AmiLaunchIndex": i, "State": {"Name": "pending"},
             "Placement": {"AvailabilityZone": params["Placement"]["AvailabilityZone"]}}
            for i in range(params["MaxCount"])]}


def launch(fake, count=4, **opts):
    options = dict({"placements": [{"availability_zone": "us-east-1a"}, {"availability_zone": "us-east-1b"}]}, **opts)
    provider = aws_provider.AwsProvider(options, client=fake, policy=retry.RetryPolicy(sleep=lambda s: None))
    spec = NodeSpec(cluster="c1", ssh_public_key=PUBKEY, instance_type="p4d.24xlarge", image="ami-0123456789abcdef0")
    provider.preflight(spec)
    prepared = provider.preflight_create(spec, list(range(count)), existing=[])
    return provider, provider.create_nodes(spec, list(range(count)), existing=[], prepared=prepared)


def test_one_run_instances_for_the_whole_cluster():
    fake = FakeEC2([None])
    provider, nodes = launch(fake, count=4)
    assert [n.rank for n in nodes] == [0, 1, 2, 3]
    (run,) = fake.runs
    assert run["MinCount"] == run["MaxCount"] == 4
    assert run["Placement"] == {"AvailabilityZone": "us-east-1a", "GroupName": "aiinfra-c1"}
    assert [(n["NetworkCardIndex"], n["InterfaceType"]) for n in run["NetworkInterfaces"]] == [
        (0, "efa"), (1, "efa-only"), (2, "efa-only"), (3, "efa-only")]
    assert "SubnetId" not in run and all(n["Groups"] == ["sg-1"] for n in run["NetworkInterfaces"])
    assert run["MetadataOptions"]["HttpTokens"] == "required"
    assert run["BlockDeviceMappings"][0]["Ebs"] == {"VolumeType": "gp3", "DeleteOnTermination": True, "VolumeSize": 50}
    tags = dict((t["Key"], t["Value"]) for t in run["TagSpecifications"][0]["Tags"])
    assert tags["aiinfra-gpu-cluster"] == "c1" and tags["aiinfra-gpu-ranks"] == "0-3"
    assert fake.calls.count("create_tags") == 4 and "import_key_pair" in fake.calls
    assert provider.describe(launch=nodes)["landed"]["availability_zone"] == "us-east-1a"


def test_capacity_moves_on_at_once_and_reports_where_it_landed():
    fake = FakeEC2([client_error("InsufficientInstanceCapacity", status=500), None])
    provider, nodes = launch(fake)
    assert [r["Placement"]["AvailabilityZone"] for r in fake.runs] == ["us-east-1a", "us-east-1b"]
    assert fake.runs[0]["ClientToken"] != fake.runs[1]["ClientToken"]
    assert nodes.info["landed"]["availability_zone"] == "us-east-1b"
    assert nodes.info["failover"][0]["availability_zone"] == "us-east-1a"
    assert len(nodes) == 4


def test_capacity_everywhere_fails_with_what_was_tried():
    fake = FakeEC2([client_error("InsufficientInstanceCapacity", status=500)] * 2)
    with pytest.raises(CapacityError, match="us-east-1a p4d.24xlarge.*us-east-1b p4d.24xlarge"):
        launch(fake)


def test_quota_fails_fast_without_trying_other_placements():
    fake = FakeEC2([client_error("VcpuLimitExceeded")])
    with pytest.raises(QuotaError, match="Running On-Demand P instances"):
        launch(fake)
    assert len(fake.runs) == 1


def test_throttling_is_retried_with_the_same_token():
    fake = FakeEC2([client_error("RequestLimitExceeded", status=503), ReadTimeoutError(endpoint_url="x"), None])
    launch(fake)
    assert len(fake.runs) == 3 and len(set(r["ClientToken"] for r in fake.runs)) == 1


def test_a_token_of_terminated_instances_moves_to_the_next_generation():
    fake = FakeEC2([client_error("IdempotentInstanceTerminated"), None])
    launch(fake)
    assert len(fake.runs) == 2 and fake.runs[0]["ClientToken"] != fake.runs[1]["ClientToken"]
    request = dict((k, v) for k, v in fake.runs[0].items() if k != "ClientToken")
    assert fake.runs[1]["ClientToken"] == aws_shapes.client_token("c1", [0, 1, 2, 3], request, generation=1)


def test_min_count_accepts_fewer():
    fake = FakeEC2([None])
    launch(fake, count=8, min_count=6)
    assert (fake.runs[0]["MinCount"], fake.runs[0]["MaxCount"]) == (6, 8)


def test_efa_and_placement_group_can_be_turned_off():
    fake = FakeEC2([None])
    launch(fake, efa=False, placement_group=False, spot=True)
    run = fake.runs[0]
    assert "NetworkInterfaces" not in run and run["SubnetId"] == "subnet-a" and run["SecurityGroupIds"] == ["sg-1"]
    assert "GroupName" not in run["Placement"]
    assert run["InstanceMarketOptions"]["MarketType"] == "spot"


def test_root_volume_smaller_than_the_image_is_refused_before_anything_is_created():
    fake = FakeEC2([None])
    with pytest.raises(ConfigError, match="smaller than image"):
        launch(fake, root_volume_size=20)
    assert not fake.runs and "import_key_pair" not in fake.calls


def test_missing_security_group_is_a_clear_error_but_not_in_check_mode():
    fake = FakeEC2([None])
    fake._describe_security_groups = lambda **params: {"SecurityGroups": []}
    provider = aws_provider.AwsProvider({}, client=fake)
    spec = NodeSpec(cluster="c1", ssh_public_key=PUBKEY, instance_type="p4d.24xlarge", image="ami-0123456789abcdef0")
    with pytest.raises(ConfigError, match="no security group. Run aiinfra.gpu_cluster.firewall"):
        provider.preflight_create(spec, [0])
    provider.preflight_create(spec, [0], check_mode=True)


@pytest.mark.parametrize("opts, spec, message", [
    ({}, {"instance_type": ""}, "instance_type is required"),
    ({}, {"image": ""}, "image is required"),
    ({}, {"image": "ami-xyz"}, "not a valid AMI id"),
    ({"region": "mars"}, {}, "not an AWS region"),
    ({"placements": [{"subnet_id": None}]}, {}, "a placement needs"),
    ({"min_count": 0}, {}, "min_count must be at least 1"),
    ({"root_volume_size": 2}, {}, "root_volume_size must be"),
])
def test_offline_preflight(opts, spec, message):
    values = dict({"cluster": "c1", "instance_type": "p4d.24xlarge", "image": "ami-0123456789abcdef0"}, **spec)
    with pytest.raises(ConfigError, match=message):
        aws_provider.AwsProvider(opts, client=FakeEC2([])).preflight(NodeSpec(**values))


# -- firewall reconcile against a fake EC2 -------------------------------------------------
class FakeGroups(object):
    meta = _Meta()

    def __init__(self, group=None):
        self.group = group
        self.calls = []

    def describe_security_groups(self, **params):
        self.calls.append(("describe", None))
        return {"SecurityGroups": [self.group] if self.group else []}

    def describe_vpcs(self, **params):
        self.calls.append(("vpcs", None))
        return {"Vpcs": [{"VpcId": "vpc-d"}]}

    def create_security_group(self, **params):
        self.calls.append(("create", params["VpcId"]))
        return {"GroupId": "sg-new"}

    def __getattr__(self, name):
        def call(GroupId, IpPermissions):
            self.calls.append((name, IpPermissions))
            return {}
        return call


def group_with(rules):
    ingress = [r for r in rules if r.direction == "ingress"]
    egress = [r for r in rules if r.direction == "egress"]
    return {"GroupId": "sg-1", "GroupName": "aiinfra-c1", "VpcId": "vpc-1",
            "IpPermissions": aws_shapes.permissions_from_rules(ingress, "sg-1"),
            "IpPermissionsEgress": aws_shapes.permissions_from_rules(egress, "sg-1")}


def test_firewall_created_in_the_default_vpc_with_one_call_per_direction():
    fake = FakeGroups()
    result = aws_provider.AwsProvider({}, client=fake).ensure_firewall("c1", desired_rules(["203.0.113.0/24"]))
    assert result["changed"] and result["created"] and result["id"] == "sg-new"
    assert [c[0] for c in fake.calls] == ["describe", "vpcs", "create", "authorize_security_group_ingress",
                                          "authorize_security_group_egress"]
    assert result["added"] == ["ingress tcp:22 from 203.0.113.0/24", "ingress all from self", "egress all to self"]


def test_firewall_unchanged_is_one_read():
    fake = FakeGroups(group_with(desired_rules(["203.0.113.0/24"])))
    result = aws_provider.AwsProvider({}, client=fake).ensure_firewall("c1", desired_rules(["203.0.113.0/24"]))
    assert not result["changed"] and fake.calls == [("describe", None)]


def test_firewall_extra_rules_go_only_with_purge():
    # the collection's own rule for a dropped CIDR always goes; a rule somebody else added only with purge
    old = desired_rules(["198.51.100.0/24"]) + [RuleSpec("ingress", "tcp", 8888, 8888, "10.0.0.0/8")]
    wanted = desired_rules(["203.0.113.0/24"])
    fake = FakeGroups(group_with(old))
    result = aws_provider.AwsProvider({}, client=fake).ensure_firewall("c1", wanted)
    assert result["added"] == ["ingress tcp:22 from 203.0.113.0/24"]
    assert result["removed"] == ["ingress tcp:22 from 198.51.100.0/24"]
    revoked = [c[1] for c in fake.calls if c[0] == "revoke_security_group_ingress"]
    assert [p["FromPort"] for p in revoked[0]] == [22]

    fake = FakeGroups(group_with(old))
    result = aws_provider.AwsProvider({}, client=fake).ensure_firewall("c1", wanted, purge=True)
    assert sorted(result["removed"]) == ["ingress tcp:22 from 198.51.100.0/24", "ingress tcp:8888 from 10.0.0.0/8"]
    revoked = [c[1] for c in fake.calls if c[0] == "revoke_security_group_ingress"][0]
    assert sorted(p["FromPort"] for p in revoked) == [22, 8888]
    assert [c[0] for c in fake.calls].index("authorize_security_group_ingress") < \
        [c[0] for c in fake.calls].index("revoke_security_group_ingress")  # never less access in between


def test_firewall_check_mode_changes_nothing():
    fake = FakeGroups()
    result = aws_provider.AwsProvider({}, client=fake).ensure_firewall("c1", desired_rules(["203.0.113.0/24"]), check_mode=True)
    assert result["changed"] and fake.calls == [("describe", None)]
