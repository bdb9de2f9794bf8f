# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The options that find a cluster on any cloud.
    DOCUMENTATION = r"""
options:
  cloud:
    description:
      - Which cloud the cluster lives on.
      - C(local) runs every node as a podman container (systemd + sshd) on the controller and needs no account.
      - C(aws) runs every node as an EC2 instance (needs C(boto3) and AWS credentials).
      - C(azure) runs every node as an Azure VM (needs C(azure-identity), C(azure-mgmt-compute), C(azure-mgmt-network)
        and C(azure-mgmt-resource), and Azure credentials).
      - C(gcp) runs every node as a Compute Engine VM (needs C(google-auth) and C(requests), and Google credentials).
    type: str
    default: local
    choices: [aws, azure, gcp, local]
  cluster:
    description:
      - The cluster id. Every resource the collection creates carries it as a tag or label, which is how
        the cluster is found again (no state file).
      - 1-40 characters, lowercase letters, digits and C(-), starting with a letter, not ending with C(-),
        so that every cloud accepts it.
    type: str
    required: true
    aliases: [name]
"""

    # Options of the local (podman) cloud.
    LOCAL = r"""
options:
  podman_conf:
    description:
      - Path of a C(containers.conf) for podman (sets C(CONTAINERS_CONF)).
      - When unset and C(CONTAINERS_CONF) is not in the environment, the collection writes one that selects
        the C(runc) runtime and no default ulimits, which works where C(crun) does not (hybrid cgroups).
      - Only for O(cloud=local).
    type: path
"""

    # How to reach EC2 (cloud aws). Unset options fall back to boto3's usual chain.
    AWS = r"""
options:
  region:
    description:
      - The AWS region, e.g. C(us-east-1). Defaults to C(AWS_REGION) / C(AWS_DEFAULT_REGION) or the profile's region.
      - On O(cloud=gcp), a Compute Engine region (e.g. C(us-central1)) whose zones are tried when no placements
        are given.
    type: str
  endpoint_url:
    description:
      - Talk to this EC2 endpoint instead of the region's public one (a VPC endpoint, a test server).
      - Defaults to C(AWS_ENDPOINT_URL_EC2) / C(AWS_ENDPOINT_URL) when set.
      - On O(cloud=azure) the Resource Manager root (default C(https://management.azure.com), a sovereign cloud's, or a
        test server's); tokens are asked for its C(/.default) scope.
      - On O(cloud=gcp), the Compute API root (default C(https://compute.googleapis.com/compute/v1/)).
    type: str
  access_key:
    description:
      - AWS access key id. When unset, boto3's credential chain is used (C(AWS_ACCESS_KEY_ID),
        C(AWS_PROFILE) and C(~/.aws), container or instance role). Only for O(cloud=aws).
    type: str
  secret_key:
    description:
      - AWS secret access key, with O(access_key). Never logged. Only for O(cloud=aws).
    type: str
  session_token:
    description:
      - AWS session token for temporary credentials, with O(access_key). Never logged. Only for O(cloud=aws).
    type: str
  profile:
    description:
      - A named profile of C(~/.aws/config) / C(~/.aws/credentials). Only for O(cloud=aws).
    type: str
requirements:
  - boto3 (for O(cloud=aws), on the host that runs the module)
"""

    # How to reach Compute Engine (cloud gcp), beside region and endpoint_url (see AWS).
    GCP = r"""
options:
  project:
    description:
      - The Google Cloud project id. Defaults to C(GCP_PROJECT), C(GOOGLE_CLOUD_PROJECT), else the credentials' own
        project. Only for O(cloud=gcp).
    type: str
  credentials_file:
    description:
      - A service-account key file (JSON). Its C(token_uri) is honoured.
      - Defaults to C(GCP_SERVICE_ACCOUNT_FILE), C(GOOGLE_APPLICATION_CREDENTIALS), else Application Default
        Credentials (C(gcloud auth application-default login), or the VM's service account). Only for O(cloud=gcp).
    type: path
  network:
    description:
      - The VPC network of the nodes and the firewall rules (default C(default)). Only for O(cloud=gcp).
    type: str
requirements:
  - google-auth and requests (for O(cloud=gcp), on the host that runs the module)
"""

    # What the instance module takes on Compute Engine (cloud gcp), beside placements, min_count, spot and
    # root_volume_size (see AWS_INSTANCE).
    GCP_INSTANCE = r"""
options:
  subnetwork:
    description:
      - A subnetwork of O(network) (by name; it must exist in the region of every placement). Default the
        network's subnetwork of the region (auto-mode networks). Only for O(cloud=gcp).
    type: str
  accelerators:
    description:
      - GPUs to attach to machine types without built-in ones (N1), e.g. one entry with
        O(accelerators[].type=nvidia-tesla-v100) and O(accelerators[].count=8).
        A2, A3, A4 and G2 types have their GPUs built in; setting this with them is an error. Only for O(cloud=gcp).
    type: list
    elements: dict
    suboptions:
      type:
        description: The GPU type (an accelerator type of the zone), e.g. C(nvidia-tesla-t4).
        type: str
        required: true
      count:
        description: GPUs per node.
        type: int
        default: 1
"""

    # What the instance module takes on EC2 (cloud aws).
    AWS_INSTANCE = r"""
options:
  placements:
    description:
      - Where to try to launch the cluster, in order. On O(cloud=azure) each entry names a O(placements[].location)
        and optionally a O(placements[].zone); C(AllocationFailed), C(ZonalAllocationFailed), C(SkuNotAvailable) and
        C(OverconstrainedAllocationRequest) move on to the next at once.
      - On O(cloud=aws) an C(InsufficientInstanceCapacity) (or kin) in one
        placement moves on to the next at once; throttling and 5xx are retried in place; quota errors fail at once.
      - Each entry names a O(placements[].subnet_id), an O(placements[].availability_zone) (its default subnet),
        or neither (every availability zone of the default VPC, in order), and optionally an alternative
        O(placements[].instance_type).
      - Unset, every availability zone of the default VPC that offers the instance type is tried in order.
      - Once a cluster has nodes, new nodes go to the same availability zone.
      - The result's RV(cluster.landed) says where the cluster landed and RV(cluster.failover) what was skipped.
      - On O(cloud=gcp) each entry names a O(placements[].zone); a stockout (C(ZONE_RESOURCE_POOL_EXHAUSTED)) moves
        on to the next at once. Unset, the zones of O(region) are tried in order.
    type: list
    elements: dict
    suboptions:
      subnet_id:
        description: A subnet (of the VPC of the cluster's security group).
        type: str
      availability_zone:
        description: An availability zone; its default subnet is used unless O(placements[].subnet_id) is set.
        type: str
      instance_type:
        description: Instance type for this placement instead of O(instance_type) (cloud aws).
        type: str
      location:
        description: An Azure location, e.g. C(eastus) (cloud azure).
        type: str
      zone:
        description:
          - A Compute Engine zone, e.g. C(us-central1-a) (cloud gcp).
          - An availability zone (C(1), C(2), C(3)) of O(placements[].location) (cloud azure). Zonal nodes get no
            availability set (Azure allows one or the other); leave unset for ND-series InfiniBand clusters.
        type: str
  min_count:
    description:
      - Accept a cluster of at least this many nodes when capacity is short (RunInstances MinCount). By default
        the launch is all-or-nothing (MinCount = MaxCount). A later run adds the missing nodes.
      - For O(cloud=aws) and O(cloud=gcp) (bulkInsert C(minCount)).
    type: int
  key_name:
    description:
      - An existing EC2 key pair to launch with. When unset, O(ssh_public_key) is imported as a key pair of the
        cluster's own (deleted with the cluster). With O(key_name) and no O(ssh_public_key), set O(ssh_user) to
        the login the key pair is installed for. Only for O(cloud=aws).
    type: str
  security_groups:
    description:
      - Security groups (ids or names) to attach besides the cluster's own, which M(aiinfra.gpu_cluster.firewall)
        creates. One of the two is required. Only for O(cloud=aws).
    type: list
    elements: str
  placement_group:
    description:
      - Launch into a cluster placement group C(aiinfra-<cluster>) (created and reused; deleted with the cluster).
      - Unset means yes when the instance type supports cluster placement groups; C(true) fails when it does not.
      - Only for O(cloud=aws).
    type: bool
  efa:
    description:
      - Attach Elastic Fabric Adapter interfaces, read from C(DescribeInstanceTypes) - an C(efa) interface on the
        first network card and C(efa-only) ones on the others, as many as the type allows.
      - Unset means yes when the instance type has EFA; C(true) fails when it does not.
      - EFA nodes have several network interfaces, so EC2 gives them no public IPv4 address; reach them from
        inside the VPC (a bastion, VPN or SSM). Only for O(cloud=aws).
    type: bool
  root_volume_size:
    description:
      - Root volume size in GiB (default the image's). Deleted with the node. For O(cloud=aws), O(cloud=azure) and
        O(cloud=gcp).
    type: int
  root_volume_type:
    description: Root volume type (default C(gp3)). Only for O(cloud=aws).
    type: str
    choices: [gp3, gp2, io1, io2]
  spot:
    description:
      - Launch spot instances (one-time, terminated on interruption). For O(cloud=aws), O(cloud=azure) (Spot VMs
        deleted on eviction) and O(cloud=gcp) (Spot VMs, deleted when preempted).
    type: bool
  image_owners:
    description:
      - Owners searched when O(image) is a name pattern (default C(self) and C(amazon)); add e.g. Canonical's
        C(099720109477) for Ubuntu images. Only for O(cloud=aws).
    type: list
    elements: str
"""

    # How to reach Azure Resource Manager (cloud azure).
    AZURE = r"""
options:
  subscription_id:
    description:
      - The Azure subscription id. Defaults to C(AZURE_SUBSCRIPTION_ID). Only for O(cloud=azure).
    type: str
  tenant:
    description:
      - The tenant (directory) id of a service principal. Defaults to C(AZURE_TENANT_ID) (azure-identity's name) or
        C(AZURE_TENANT) (what AWX injects). Only for O(cloud=azure).
    type: str
  client_id:
    description:
      - The application (client) id of a service principal. Defaults to C(AZURE_CLIENT_ID). Only for O(cloud=azure).
    type: str
  secret:
    description:
      - The service principal's client secret. Defaults to C(AZURE_CLIENT_SECRET) (azure-identity) or C(AZURE_SECRET)
        (AWX). Never logged. With no secret anywhere, C(DefaultAzureCredential) is used (managed identity,
        C(az login)). Only for O(cloud=azure).
    type: str
  authority_host:
    description:
      - The Entra ID authority, e.g. C(https://login.microsoftonline.us). Defaults to C(AZURE_AUTHORITY_HOST), else
        the public cloud's. A non-Microsoft authority (a test server) is used without instance discovery.
        Only for O(cloud=azure).
    type: str
  location:
    description:
      - The Azure location of the cluster, for example C(eastus). The firewall's NSG and the resource group live there;
        nodes too unless the instance module's placements say otherwise. Only for O(cloud=azure).
    type: str
  resource_group:
    description:
      - The resource group for the cluster's resources. Unset, the cluster gets a group of its own,
        C(aiinfra-<cluster>), created by the collection and deleted whole at teardown. A group named here is never
        deleted; only what carries the cluster tag is. Only for O(cloud=azure).
    type: str
requirements:
  - azure-identity, azure-mgmt-compute, azure-mgmt-network, azure-mgmt-resource (for O(cloud=azure), on the host that
    runs the module)
"""

    # What the instance module takes on Azure (cloud azure).
    AZURE_INSTANCE = r"""
options:
  public_ip:
    description:
      - Give every node a public address. Set C(false) for a controller inside the network (a bastion, VPN, peered
        VPC, SSM); the nodes are then reached at their private addresses and nothing reaches them from the internet.
      - On O(cloud=azure) a Standard static public IP per node (deleted with the node); unset means yes.
      - On O(cloud=gcp) an ephemeral external IP (an C(ONE_TO_ONE_NAT) access config); unset means yes.
      - On O(cloud=aws) C(AssociatePublicIpAddress) of the node's network interface; unset, the subnet's own setting
        decides (the default VPC's subnets give one). EFA types with several network interfaces never get one, and
        C(true) with them is an error.
      - For O(cloud=aws), O(cloud=azure) and O(cloud=gcp).
    type: bool
  subnet_id:
    description:
      - Bring your own network - the resource id of a subnet for the nodes (in the nodes' location). Unset, the
        cluster gets a VNet of its own per location with the firewall's NSG on its subnet. Only for O(cloud=azure).
    type: str
"""
