# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure errors, classified once: capacity, quota, throttling, permissions, configuration.

Works on the exceptions of azure-core / azure-identity by their class names and ARM's error codes, so it needs
neither SDK to be importable (unit tests feed it stand-ins).
"""

from __future__ import annotations

import re

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CapacityError, CloudError, ConfigError, NotFoundError, QuotaError, TransientError)

CAPACITY_CODES = frozenset((
    "SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest", "AllocationFailedVMSizeNotAvailable",
))
QUOTA_CODES = frozenset(("QuotaExceeded", "OperationNotAllowed", "SubscriptionQuotaExceeded"))
TRANSIENT_CODES = frozenset((
    "TooManyRequests", "RetryableError", "InternalServerError", "ServiceUnavailable", "GatewayTimeout",
    "AnotherOperationInProgress", "RetryableErrorDueToAnotherOperation", "Conflict",
))
NOT_FOUND_CODES = frozenset((
    "ResourceNotFound", "ResourceGroupNotFound", "NotFound", "PlatformImageNotFound", "InvalidResourceReference",
    "SubscriptionNotFound",
))
AUTH_HINT = ("Give a service principal as tenant / client_id / secret, or in the environment as azure-identity "
             "reads it (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) or as AWX injects it (AZURE_TENANT, "
             "AZURE_CLIENT_ID, AZURE_SECRET); with none of them DefaultAzureCredential is used (managed identity, "
             "az login)")
QUOTA_RE = re.compile(r"exceeding approved (\S+) Cores quota.*?Location: (\w+), Current Limit: (\d+), "
                      r"Current Usage: (\d+), Additional Required: (\d+)", re.S)
ACTION_RE = re.compile(r"perform action '([^']+)' over scope '([^']+)'")


def error_parts(exc):
    """(code, message, HTTP status) of an azure-core HttpResponseError (or anything else)."""
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    message = getattr(err, "message", None)
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if not code and response is not None:
        try:
            body = response.json() or {}
            body = body.get("error") or body
            code, message = body.get("code"), body.get("message")
        except Exception:  # pylint: disable=broad-except
            pass
    return code or None, message or getattr(exc, "message", None) or str(exc), status


def retry_after(exc):
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after") or 0)
    except (TypeError, ValueError):
        return 0.0


def quota_details(message):
    """``{family, location, limit, usage, required}`` from ARM's quota message, or ``None``."""
    match = QUOTA_RE.search(message or "")
    if not match:
        return None
    family, location, limit, usage, required = match.groups()
    return {"family": family, "location": location, "limit": int(limit), "usage": int(usage),
            "required": int(required)}


def classify(exc, context=None):
    """An azure-core / azure-identity exception -> :class:`CloudError` (``None``: not an Azure error)."""
    ctx = context or {}
    names = set(cls.__name__ for cls in type(exc).__mro__)
    if names & {"ClientAuthenticationError", "CredentialUnavailableError", "AuthenticationRequiredError"}:
        code, message, status = error_parts(exc)
        if code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
            return _authorization(message, code)
        return ConfigError("Azure refused the credentials (%s): %s" % (ctx.get("credential") or "credential",
                                                                       _first_line(message)),
                           hint=AUTH_HINT, code=code or "ClientAuthenticationError")
    if "HttpResponseError" not in names and "AzureError" not in names:
        return None
    code, message, status = error_parts(exc)
    if "ServiceRequestError" in names or "ServiceResponseError" in names:
        return TransientError("could not talk to Azure: %s" % _first_line(message),
                              hint="Check endpoint_url and the network path to it", code=type(exc).__name__)
    if status == 429 or code == "TooManyRequests":
        err = TransientError("Azure is throttling: %s" % message, code=code or "TooManyRequests")
        err.retry_after = retry_after(exc)
        return err
    if code in CAPACITY_CODES:
        where = ctx.get("placement") or "this placement"
        return CapacityError("no Azure capacity for %s in %s: %s" % (ctx.get("instance_type") or "the request",
                                                                     where, message), code=code)
    if code == "QuotaExceeded" or (code in QUOTA_CODES and "quota" in (message or "").lower()):
        return _quota(code, message, ctx)
    if code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return _authorization(message, code)
    if code in ("InvalidAuthenticationTokenAudience", "InvalidAuthenticationToken", "AuthenticationFailed",
                "ExpiredAuthenticationToken"):
        return ConfigError("Azure Resource Manager refused the token: %s" % message, code=code,
                           hint="The token must be for <endpoint_url>/.default; check endpoint_url and the tenant")
    if code in TRANSIENT_CODES or (status and status >= 500):
        err = TransientError("Azure is busy or failing: %s" % message, code=code)
        err.retry_after = retry_after(exc)
        return err
    if code in NOT_FOUND_CODES or status == 404:
        return NotFoundError("%s does not exist: %s" % (ctx.get("resource") or "a resource the request names",
                                                        message), code=code)
    if code == "ReferencedResourceNotProvisioned":
        err = TransientError("a resource this one refers to is still being provisioned: %s" % message, code=code)
        return err
    return ConfigError("Azure rejected the request: %s" % message, code=code)


def _first_line(text):
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _authorization(message, code):
    match = ACTION_RE.search(message or "")
    if match:
        return ConfigError("the credential lacks the permission %s on %s" % match.groups(), code=code,
                           hint="Grant it (e.g. the Contributor role on the subscription or resource group) to the "
                                "identity the collection uses")
    return ConfigError("the credential lacks a permission: %s" % message, code=code,
                       hint="Grant the identity the Contributor role on the subscription or resource group")


def _quota(code, message, ctx):
    details = quota_details(message)
    if details:
        return QuotaError(
            "Azure quota for %s in %s is too low: limit %d vCPUs, %d in use, this cluster needs %d more"
            % (details["family"], details["location"], details["limit"], details["usage"], details["required"]),
            hint="Request an increase of '%s' (Subscriptions > Usage + quotas) to at least %d, or lower count. "
                 "Another placement in the same location does not help"
                 % (details["family"], details["usage"] + details["required"]), code=code)
    family = ctx.get("family") or "the VM family"
    return QuotaError("Azure quota exceeded for %s: %s" % (family, message), code=code,
                      hint="Request a quota increase for %s (Subscriptions > Usage + quotas)" % family)


def with_detail(err, exc):
    """Keep ARM's own words on the classified error."""
    if isinstance(err, CloudError):
        err.detail = error_parts(exc)[1]
    return err
