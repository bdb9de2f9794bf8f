# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  access_key:
    description:
      - AWS access key id. When unset, boto3's credential chain is used (C(AWS_ACCESS_KEY_ID), C(AWS_PROFILE)
        and C(~/.aws), container or instance role).
      - Only for O(cloud=aws).
    type: str
  profile:
    description:
      - A named profile of C(~/.aws/config) / C(~/.aws/credentials).
      - Only for O(cloud=aws).
    type: str
  secret_key:
    description:
      - AWS secret access key, with O(access_key). Never logged.
      - Only for O(cloud=aws).
    type: str
  session_token:
    description:
      - AWS session token for temporary credentials, with O(access_key). Never logged.
      - Only for O(cloud=aws).
    type: str
requirements:
  - boto3 (for O(cloud=aws), on the host that runs the module)
"""

    INSTANCE = r"""
options:
  efa:
    description:
      - Attach Elastic Fabric Adapter interfaces, read from C(DescribeInstanceTypes) - an C(efa) interface
        on the first network card and C(efa-only) ones on the others, as many as the type allows.
      - Unset means yes when the instance type has EFA; C(true) fails when it does not.
      - EFA nodes have several network interfaces, so EC2 gives them no public IPv4 address; reach them
        from inside the VPC (a bastion, VPN or SSM).
      - Only for O(cloud=aws).
    type: bool
  image_owners:
    description:
      - Owners searched when O(image) is a name pattern (default C(self) and C(amazon)); add e.g. Canonical's
        C(099720109477) for Ubuntu images.
      - Only for O(cloud=aws).
    type: list
    elements: str
  key_name:
    description:
      - An existing EC2 key pair to launch with. When unset, O(ssh_public_key) is imported as a key pair
        of the cluster's own (deleted with the cluster). With O(key_name) and no O(ssh_public_key), set
        O(ssh_user) to the login the key pair is installed for.
      - Only for O(cloud=aws).
    type: str
  placement_group:
    description:
      - Launch into a cluster placement group C(aiinfra-<cluster>) (created and reused; deleted with the
        cluster).
      - Unset means yes when the instance type supports cluster placement groups; C(true) fails when it
        does not.
      - Only for O(cloud=aws).
    type: bool
  root_volume_type:
    description:
      - Root volume type (default C(gp3)).
      - Only for O(cloud=aws).
    type: str
    choices:
      - gp3
      - gp2
      - io1
      - io2
  security_groups:
    description:
      - Security groups (ids or names) to attach besides the cluster's own, which M(aiinfra.gpu_cluster.firewall)
        creates. One of the two is required.
      - Only for O(cloud=aws).
    type: list
    elements: str
"""

    FIREWALL = r"""
options:
  vpc_id:
    description:
      - The VPC of the security group, when it is created (default the region's default VPC). The cluster's
        subnets must be in the same VPC.
      - Only for O(cloud=aws).
    type: str
"""
