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

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import podman  # noqa: E402  (tests/ is not a package)

ACCESS_KEY = "AKIAAIINFRATESTKEY01"


def gateway_address(cluster):
    """The controller's address on the cluster's podman network."""
    out = podman("network", "inspect", "aiinfra-%s" % cluster).stdout
    nets = json.loads(out)
    for subnet in nets[0].get("subnets") or []:
        if subnet.get("gateway") and ":" not in subnet["gateway"]:
            return subnet["gateway"]
    raise RuntimeError("network aiinfra-%s has no IPv4 gateway: %s" % (cluster, out[:500]))


def free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class S3Server(object):
    """``moto_server`` bound to ``host`` (default: the gateway of ``cluster``'s network)."""

    def __init__(self, cluster=None, host=None, secret="aiinfra-test-secret-do-not-print"):
        self.host = host or gateway_address(cluster)
        self.secret = secret
        self.port = None
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.log = tempfile.NamedTemporaryFile(prefix="moto-s3-", suffix=".log", delete=False)
        for _attempt in range(3):  # the port is free when picked; another process may take it before moto binds
            self.port = free_port(self.host)
            self.proc = subprocess.Popen([exe, "-H", self.host, "-p", str(self.port)], stdout=self.log,
                                         stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((self.host, self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError("moto_server did not start on %s: %s" % (self.host, self.log_text()[-2000:]))

    def log_text(self):
        with open(self.log.name) as handle:
            return handle.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.log is not None:
            self.log.close()
            os.unlink(self.log.name)

    def options(self, **extra):
        """``gpu_cluster_storage_options`` for a play."""
        return dict({"endpoint_url": self.url, "region": "us-east-1", "access_key": ACCESS_KEY,
                     "secret_key": self.secret}, **extra)

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=self.secret,
                            config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=16))
