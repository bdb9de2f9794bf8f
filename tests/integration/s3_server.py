"""A moto S3 server the local nodes reach over their cluster network, for the life of a ``with`` block.

It binds to the cluster network's gateway address (the controller's side of the podman bridge,
``podman network inspect aiinfra-<cluster>``), not to every interface, on a free port. ``client()`` is a
boto3 client for making buckets and objects from the test; ``options()`` is what a play takes as
``gpu_cluster_storage_options`` (moto takes any key pair; pass ``secret`` to make it recognisable in output).

    with S3Server(cluster) as s3:
        s3.client().create_bucket(Bucket="data")
        run_playbook(..., extra_vars={"gpu_cluster_storage_options": s3.options()})
"""

from __future__ import annotations

import os
import sys

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_servers import Server  # noqa: E402

ACCESS_KEY = "AKIAAIINFRATESTKEY01"


class S3Server(Server):
    """``moto_server`` bound to ``host`` (default: the gateway of ``cluster``'s network)."""

    name = "moto-s3"

    def __init__(self, cluster=None, host=None, secret="aiinfra-test-secret-do-not-print"):
        super().__init__(cluster, host)
        self.secret = secret

    def argv(self):
        return [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", self.host, "-p", str(self.port)]

    def options(self, **extra):
        """``gpu_cluster_storage_options`` for a play."""
        return dict({"endpoint_url": self.url, "region": "us-east-1", "access_key": ACCESS_KEY,
                     "secret_key": self.secret}, **extra)

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=self.secret,
                            config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=16))
