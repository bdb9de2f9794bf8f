"""The other clouds' object stores for tests, each for the life of a ``with`` block, as s3_server.S3Server is for S3:

- ``GCSServer``: gcp-storage-emulator (PyPI, in the venv) - Cloud Storage's JSON API; clients reach it with
  anonymous credentials and ``api_endpoint``.
- ``AzuriteServer``: Azurite's blob service (Microsoft's emulator, from npm; ``make setup`` installs it under
  .cache/npm) - the well-known development account ``devstoreaccount1`` and its published key.

Both bind to ``host`` (a cluster network's gateway for the nodes, or 127.0.0.1 for unit tests) on a free port.
``options()`` is what a play takes as ``gpu_cluster_storage_options``; ``client()`` the service's own SDK client
(a bucket / container client) for making objects from the test.

    with AzuriteServer(cluster) as az:
        az.client("data")   # creates the container
        run_playbook(..., extra_vars={"gpu_cluster_storage_options": az.options()})
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AZURITE = os.path.join(ROOT, ".cache", "npm", "node_modules", ".bin", "azurite-blob")
# Azurite's published development account (https://learn.microsoft.com/azure/storage/common/storage-use-azurite)
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def gateway_address(cluster):
    """The controller's address on the cluster's podman network."""
    sys.path.insert(0, os.path.dirname(HERE))
    from conftest import podman  # (tests/ is not a package)
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


class Server(object):
    """A server process bound to ``host`` (default: the gateway of ``cluster``'s network) on a free port."""

    name = None

    def __init__(self, cluster=None, host=None):
        self.host = host or gateway_address(cluster)
        self.port = None
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.log = tempfile.NamedTemporaryFile(prefix="%s-" % self.name, suffix=".log", delete=False)
        for _attempt in range(3):  # the port is free when picked; another process may take it before the server binds
            self.port = free_port(self.host)
            self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir(),
                                         start_new_session=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((self.host, self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.2)
            self.stop()
        raise RuntimeError("%s did not start on %s: %s" % (self.name, self.host, self.log_text()[-2000:]))

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


class GCSServer(Server):
    name = "gcp-storage-emulator"

    def argv(self):
        exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
        return [exe, "start", "--host", self.host, "--port", str(self.port), "--in-memory"]

    def options(self, **extra):
        return dict({"endpoint_url": self.url, "anonymous": True}, **extra)

    def client(self, bucket=None):
        """The google-cloud-storage client (anonymous, on the emulator); with ``bucket``, that bucket (created)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        client = storage.Client(project="test", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.url})
        if bucket is None:
            return client
        found = client.lookup_bucket(bucket)
        return found if found is not None else client.create_bucket(bucket)


class AzuriteServer(Server):
    name = "azurite-blob"

    def argv(self):
        if not os.path.exists(AZURITE):
            raise RuntimeError("%s is missing: run make setup (it installs Azurite from npm)" % AZURITE)
        return [AZURITE, "--blobHost", self.host, "--blobPort", str(self.port), "--inMemoryPersistence",
                "--skipApiVersionCheck", "--silent"]

    @property
    def account_url(self):
        return "%s/%s" % (self.url, AZ_ACCOUNT)

    def options(self, **extra):
        return dict({"endpoint_url": self.account_url, "account_name": AZ_ACCOUNT, "account_key": AZ_KEY}, **extra)

    def client(self, container=None):
        """The azure-storage-blob service client; with ``container``, that container's client (created)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient
        client = BlobServiceClient(self.account_url, credential={"account_name": AZ_ACCOUNT, "account_key": AZ_KEY})
        if container is None:
            return client
        try:
            return client.create_container(container)
        except ResourceExistsError:
            return client.get_container_client(container)
