# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How EC2's failures map onto the collection's error classes: classified once, here."""

from __future__ import annotations

import re

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError)

# -- error classification ------------------------------------------------------
CAPACITY_CODES = frozenset((
    "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientCapacityOnHost", "InsufficientFreeAddressesInSubnet",
    "InsufficientCapacityOnOutpost", "UnfulfillableCapacity", "SpotMaxPriceTooLow", "Unsupported",
    "ReservationCapacityExceeded",
))
QUOTA_CODES = frozenset((
    "VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded", "PlacementGroupLimitExceeded",
    "SecurityGroupLimitExceeded", "RulesPerSecurityGroupLimitExceeded", "ResourceLimitExceeded",
    "VolumeLimitExceeded", "AddressLimitExceeded", "NetworkInterfaceLimitExceeded", "MaxIOPSLimitExceeded",
    "InsufficientVolumeCapacity", "TagLimitExceeded",
))
TRANSIENT_CODES = frozenset((
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "EC2ThrottledException",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
    "RequestTimeoutException", "PriorRequestNotComplete", "SlowDown",
))
AUTH_CODES = frozenset((
    "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch", "OptInRequired",
    "Blocked", "PendingVerification", "ExpiredToken", "RequestExpired", "UnrecognizedClientException",
    "AccessDenied", "AccessDeniedException",
))
CONNECTION_ERRORS = frozenset((
    "HTTPClientError", "ConnectionError", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
    "ConnectionClosedError", "ResponseParserError", "IncompleteReadError",
))
CREDENTIAL_ERRORS = frozenset((
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "InvalidConfigError",
    "ProfileNotFound", "ConfigNotFound", "UnauthorizedSSOTokenError", "TokenRetrievalError",
))
CREDENTIALS_HINT = ("Give credentials the usual way (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, "
                    "AWS_PROFILE and ~/.aws, or an instance role), or set access_key / secret_key / profile")

# (instance family letters) -> (on-demand quota, spot quota), each (name, Service Quotas code or None).
QUOTAS = (
    (("p",), ("Running On-Demand P instances", "L-417A185B"), ("All P Spot Instance Requests", "L-7212CCBC")),
    (("g", "gr", "vt"), ("Running On-Demand G and VT instances", "L-DB2E81BA"),
     ("All G and VT Spot Instance Requests", "L-3819A6DF")),
    (("dl",), ("Running On-Demand DL instances", None), ("All DL Spot Instance Requests", None)),
    (("trn",), ("Running On-Demand Trn instances", None), ("All Trn Spot Instance Requests", None)),
    (("inf",), ("Running On-Demand Inf instances", None), ("All Inf Spot Instance Requests", None)),
    (("x",), ("Running On-Demand X instances", None), ("All X Spot Instance Requests", None)),
    (("f",), ("Running On-Demand F instances", None), ("All F Spot Instance Requests", None)),
    (("hpc",), ("Running On-Demand HPC instances", None), ("All HPC Spot Instance Requests", None)),
)
STANDARD_QUOTAS = (("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A"),
                   ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "L-34B43A08"))


def vcpu_quota(instance_type, spot=False):
    """The Service Quotas entry (name, code) that counts the vCPUs of ``instance_type``."""
    letters = re.match(r"[a-z]*", (instance_type or "").lower()).group(0)
    for families, on_demand, spot_quota in QUOTAS:
        if letters in families:
            return spot_quota if spot else on_demand
    return STANDARD_QUOTAS[1] if spot else STANDARD_QUOTAS[0]


def _quota_label(quota):
    name, code = quota
    return "'%s' (%s)" % (name, code) if code else "'%s'" % name


def error_parts(exc):
    """(code, message, HTTP status) of a botocore ClientError; (None, str(exc), None) for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        err = response["Error"]
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return err.get("Code") or None, err.get("Message") or str(exc), status
    return None, str(exc), None


def classify(exc, context=None):
    """See :func:`_classify`; the result also carries EC2's own words as ``detail``."""
    err = _classify(exc, context)
    if err is not None:
        err.detail = error_parts(exc)[1]
    return err


def _classify(exc, context=None):
    """Turn a boto3/botocore exception into a :class:`CloudError` (``None``: not an AWS error).

    ``context`` says what was being done: ``instance_type``, ``count``, ``vcpus``, ``spot`` (for a quota
    message that names the quota), ``region``, ``resource`` (what a *.NotFound refers to) and
    ``just_created`` (a NotFound right after a create is EC2's eventual consistency: retry).
    """
    ctx = context or {}
    names = set(cls.__name__ for cls in type(exc).__mro__)
    code, message, status = error_parts(exc)
    if code is None:
        if names & CREDENTIAL_ERRORS:
            return ConfigError("AWS credentials are missing or unusable: %s" % message, hint=CREDENTIALS_HINT,
                               code=type(exc).__name__)
        if "NoRegionError" in names:
            return ConfigError("no AWS region given", hint="Set region (e.g. us-east-1) or AWS_REGION")
        if "ParamValidationError" in names:
            return ConfigError("EC2 rejected the request's shape: %s" % message, code="ParamValidationError")
        if names & CONNECTION_ERRORS:
            return TransientError("could not talk to EC2: %s" % message,
                                  hint="Check region, endpoint_url and the network path to the EC2 endpoint",
                                  code=type(exc).__name__)
        if "BotoCoreError" in names:
            return CloudError("boto3 failed: %s" % message, code=type(exc).__name__)
        return None
    if code in CAPACITY_CODES:
        where = ctx.get("placement") or "this placement"
        return CapacityError("no EC2 capacity for %s in %s: %s" % (ctx.get("instance_type") or "the request", where,
                                                                   message), code=code)
    if code in QUOTA_CODES:
        return _quota_error(code, message, ctx)
    if code in TRANSIENT_CODES or (status and status >= 500):
        return TransientError("EC2 is busy or failing: %s" % message, code=code)
    if code in AUTH_CODES:
        return ConfigError("AWS refused the credentials or the permission: %s" % message, hint=CREDENTIALS_HINT,
                           code=code)
    if code.endswith((".NotFound", ".Unknown")) or code in ("InvalidAMIID.Unavailable",):
        if ctx.get("just_created"):
            return TransientError("EC2 does not show a just-created resource yet: %s" % message, code=code)
        return NotFoundError("%s does not exist: %s" % (ctx.get("resource") or "a resource the request names",
                                                        message), code=code)
    if code == "IdempotentParameterMismatch":
        return ConfigError("EC2 saw this ClientToken with other parameters: %s" % message, code=code,
                           hint="This is a bug in the token derivation; please report it")
    return ConfigError("EC2 rejected the request: %s" % message, code=code)


def _quota_error(code, message, ctx):
    instance_type = ctx.get("instance_type")
    if code in ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded") and instance_type:
        quota = vcpu_quota(instance_type, ctx.get("spot"))
        need = ""
        if ctx.get("count"):
            need = " (%d x %s" % (ctx["count"], instance_type)
            need += " = %d vCPUs)" % ctx["vcpus"] if ctx.get("vcpus") else ")"
        return QuotaError(
            "EC2 quota %s in %s is too low for this cluster%s"
            % (_quota_label(quota), ctx.get("region") or "the region", need),
            hint="Request an increase of %s in Service Quotas (Amazon Elastic Compute Cloud), or lower count. "
                 "Another placement does not help: the quota is per region. EC2 said: %s"
                 % (_quota_label(quota), message),
            code=code)
    return QuotaError("EC2 account limit reached: %s" % message, code=code,
                      hint="Raise the '%s' limit in Service Quotas or remove unused resources" % code)
