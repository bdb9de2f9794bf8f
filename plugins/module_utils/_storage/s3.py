# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 (and S3-compatible stores through ``endpoint_url``) with boto3 and s3transfer.

Options (``gpu_cluster_storage_options``): ``endpoint_url``, ``region``, ``access_key``, ``secret_key``,
``session_token``. Unset or empty ones are left to boto3's own chain (environment, shared config, the
instance profile). Transfers go through one s3transfer TransferManager per store: parallel, multipart
above ``multipart_threshold``. Every object uploaded here carries its sha256 as metadata (``x-amz-meta-sha256``).
"""

from __future__ import annotations

import hashlib

from .base import ObjectInfo, Store, StorageError

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # the storage client venv has them; the message says how to get them elsewhere
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc
    BaseSubscriber = object

MiB = 1024 * 1024
MULTIPART_CHUNKSIZE = 8 * MiB
READ_SIZE = 1 * MiB
SHA256_META = "sha256"

CREDENTIALS_HINT = ("set gpu_cluster_storage_options access_key/secret_key (no_log), or give the nodes their own "
                    "credentials (an instance profile, AWS_* in the environment)")


class _KnownSize(BaseSubscriber):
    """Tells s3transfer the size we already know, which saves it a HEAD request per download."""

    def __init__(self, size):
        self._size = size

    def on_queued(self, future, **kwargs):
        future.meta.provide_transfer_size(self._size)


def classify(exc, what, bucket):
    """A StorageError with a hint for a botocore exception raised while doing ``what``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return StorageError("%s: no S3 credentials found" % what, CREDENTIALS_HINT)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return StorageError("%s: cannot reach the S3 endpoint (%s)" % (what, exc),
                            "check gpu_cluster_storage_options.endpoint_url and that the node can reach it")
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        if code in ("NoSuchBucket", "404") and "Key" not in error:
            return StorageError("%s: bucket %s does not exist" % (what, bucket),
                                "create it, or fix the bucket name in the URI")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "InvalidClientTokenId"):
            return StorageError("%s: the S3 credentials were rejected (%s)" % (what, code), CREDENTIALS_HINT)
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return StorageError("%s: access to bucket %s denied" % (what, bucket),
                                "the credentials need s3:ListBucket, s3:GetObject and s3:PutObject on it")
        return StorageError("%s: %s %s" % (what, code, error.get("Message") or exc))
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return StorageError("%s: %s" % (what, exc))
    return exc


class S3Store(Store):
    scheme = "s3"

    def __init__(self, bucket, options=None, max_concurrency=10):
        super().__init__(bucket, options)
        if not HAS_BOTO3:
            raise StorageError("boto3 is not installed for %s (%s)" % (_python(), BOTO3_IMPORT_ERROR),
                               "run the dataset role's client.yml on the node (a venv with boto3), or pip install boto3")
        opts = dict((k, v) for k, v in self.options.items() if v not in (None, ""))
        session = boto3.session.Session(
            aws_access_key_id=opts.get("access_key"), aws_secret_access_key=opts.get("secret_key"),
            aws_session_token=opts.get("session_token"), region_name=opts.get("region"))
        config = botocore.config.Config(
            retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10, read_timeout=120,
            max_pool_connections=max(10, max_concurrency * 2), s3={"addressing_style": "path"}
            if opts.get("endpoint_url") else {})
        self.client = session.client("s3", endpoint_url=opts.get("endpoint_url"), config=config)
        self.transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_CHUNKSIZE, multipart_chunksize=MULTIPART_CHUNKSIZE,
            max_request_concurrency=max_concurrency, max_submission_concurrency=max_concurrency)
        self._manager = None

    @property
    def manager(self):
        if self._manager is None:
            self._manager = TransferManager(self.client, self.transfer_config)
        return self._manager

    def close(self):
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # classify() passes through what is not a storage failure
            raise classify(exc, what, self.bucket)

    def check(self):
        self._call("checking s3://%s" % self.bucket, self.client.head_bucket, Bucket=self.bucket)

    def list(self, prefix):
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        for page in self._call("listing %s" % self.uri(prefix), list, pages):
            for item in page.get("Contents", []):
                out.append(ObjectInfo(item["Key"], item["Size"], item.get("ETag")))
        return out

    def head(self, key):
        head = self._call("reading %s" % self.uri(key), self.client.head_object, Bucket=self.bucket, Key=key)
        return ObjectInfo(key, head["ContentLength"], head.get("ETag"), head.get("Metadata", {}).get(SHA256_META))

    def download(self, key, path, size=None):
        if size is not None and size < MULTIPART_CHUNKSIZE:
            return self._get_small(key, path)
        info = self.head(key)
        future = self.manager.download(self.bucket, key, path, subscribers=[_KnownSize(info.size)])
        self._call("downloading %s" % self.uri(key), future.result)
        return info, None

    def _get_small(self, key, path):
        """One GET (no HEAD: the response carries the metadata), hashed as it is written: one pass over the bytes."""
        what = "downloading %s" % self.uri(key)
        got = self._call(what, self.client.get_object, Bucket=self.bucket, Key=key)
        sha, md5 = hashlib.sha256(), hashlib.md5()
        body = got["Body"]
        try:
            with open(path, "wb") as handle:
                for block in self._call(what, body.iter_chunks, READ_SIZE):
                    sha.update(block)
                    md5.update(block)
                    handle.write(block)
        except Exception as exc:  # a connection that breaks mid-body: classified like any other call
            raise classify(exc, what, self.bucket)
        finally:
            body.close()
        info = ObjectInfo(key, got["ContentLength"], got.get("ETag"), got.get("Metadata", {}).get(SHA256_META))
        return info, {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}

    def upload(self, path, key, sha256):
        future = self.manager.upload(path, self.bucket, key, extra_args={"Metadata": {SHA256_META: sha256}})
        self._call("uploading %s" % self.uri(key), future.result)
        return self.head(key)

    def delete(self, key):
        self._call("deleting %s" % self.uri(key), self.client.delete_object, Bucket=self.bucket, Key=key)


def _python():
    import sys
    return sys.executable
