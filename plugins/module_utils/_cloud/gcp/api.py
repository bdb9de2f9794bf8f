# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the ``gcp`` cloud talks to Compute Engine: credentials, one HTTP session, calls, pages and operations.

Credentials: ``credentials_file`` (a service-account key), else ``GCP_SERVICE_ACCOUNT_FILE`` (AWX's name) or
``GOOGLE_APPLICATION_CREDENTIALS``, else Application Default Credentials. The project: ``project``, else
``GCP_PROJECT`` / ``GOOGLE_CLOUD_PROJECT``, else the credentials' own. Every call goes through ``retry.call``;
operations are awaited with ``*Operations.wait`` in a loop bounded by a deadline (``wait`` may return early).
"""

from __future__ import annotations

import json
import os
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud import retry
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CloudError, ConfigError, TransientError, WaitTimeout)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.errors import (
    CREDENTIALS_HINT, HttpError, classify, classify_operation)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.gcp.shapes import (
    COMPUTE_SCOPE, DEFAULT_ENDPOINT, relative)

try:
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account
    HAS_GOOGLE_AUTH = True
    GOOGLE_AUTH_IMPORT_ERROR = None
except ImportError:
    HAS_GOOGLE_AUTH = False
    GOOGLE_AUTH_IMPORT_ERROR = traceback.format_exc()

FILE_VARIABLES = ("GCP_SERVICE_ACCOUNT_FILE", "GOOGLE_APPLICATION_CREDENTIALS")
PROJECT_VARIABLES = ("GCP_PROJECT", "GOOGLE_CLOUD_PROJECT")


def require_google_auth():
    if not HAS_GOOGLE_AUTH:
        raise ConfigError(missing_required_lib("google-auth"),
                          hint="Install google-auth and requests into the Python that runs the module "
                               "(pip install google-auth requests); import error: %s"
                               % (GOOGLE_AUTH_IMPORT_ERROR or "").strip().splitlines()[-1])


def read_service_account(path, where):
    """The parsed service-account key file at ``path`` (found through ``where``), or a ConfigError saying why not."""
    path = os.path.expanduser(path)
    looked = "%s (from %s)" % (path, where)
    if not os.path.isfile(path):
        raise ConfigError("the credentials file %s does not exist" % looked, hint=CREDENTIALS_HINT)
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, IOError, UnicodeError) as exc:
        raise ConfigError("the credentials file %s cannot be read: %s" % (looked, exc), hint=CREDENTIALS_HINT)
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError("the credentials file %s is not JSON" % looked, hint=CREDENTIALS_HINT)
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "service_account":
        raise ConfigError("the credentials file %s is not a service-account key (its type is %r)" % (looked, kind),
                          hint="Create a key for a service account (IAM > Service accounts > Keys) and point "
                               "credentials_file at it; for your own login use Application Default Credentials "
                               "(unset credentials_file, GCP_SERVICE_ACCOUNT_FILE and GOOGLE_APPLICATION_CREDENTIALS)")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ConfigError("the credentials file %s lacks %s" % (looked, ", ".join(missing)), hint=CREDENTIALS_HINT)
    return info


def resolve_credentials(opts, environ=None):
    """``(credentials, project, where)`` for the options and the environment (nothing is fetched yet)."""
    environ = os.environ if environ is None else environ
    path, where = opts.get("credentials_file"), "credentials_file"
    if not path:
        for name in FILE_VARIABLES:
            if environ.get(name):
                path, where = environ[name], name
                break
    own_project = None
    if path:
        require_google_auth()
        info = read_service_account(path, where)
        try:
            creds = service_account.Credentials.from_service_account_info(info, scopes=[COMPUTE_SCOPE])
        except (ValueError, KeyError) as exc:
            raise ConfigError("the credentials file %s (from %s) holds an unusable key: %s" % (path, where, exc),
                              hint=CREDENTIALS_HINT)
        own_project = info.get("project_id")
    else:
        require_google_auth()
        where = "Application Default Credentials"
        try:
            creds, own_project = google.auth.default(scopes=[COMPUTE_SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError("no Google credentials found: credentials_file is unset, so are %s, and Application "
                              "Default Credentials found none (%s)" % (" and ".join(FILE_VARIABLES), exc),
                              hint=CREDENTIALS_HINT)
    project = opts.get("project")
    if not project:
        for name in PROJECT_VARIABLES:
            if environ.get(name):
                project = environ[name]
                break
    project = project or own_project
    if not project:
        raise ConfigError("no Google Cloud project given: project is unset, so are %s, and the credentials (%s) "
                          "name none" % (" and ".join(PROJECT_VARIABLES), where),
                          hint="Set project (or GCP_PROJECT), e.g. project: my-training-project")
    return creds, project, where


class ComputeApi(retry.RetryingClient):
    """The Compute v1 REST API of one project over one authorised session, every call retried by the one retry
    helper on transient errors only. ``calls`` counts HTTP requests."""

    name = "gcp"

    def __init__(self, session, project, root=None, policy=None, log=None, sleep=time.sleep, clock=time.monotonic):
        super(ComputeApi, self).__init__(
            classify, policy or retry.RetryPolicy(attempts=8, base=0.25, cap=8.0, deadline=180, sleep=sleep), log)
        self.session = session
        self.project = project
        self.root = (root or DEFAULT_ENDPOINT).rstrip("/") + "/"
        self.sleep = sleep
        self.clock = clock

    def path(self, *parts):
        return "/".join(("projects", self.project) + tuple(parts))

    def _once(self, method, path, body, params, timeout, what):
        resp = self.session.request(method, self.root + relative(path), json=body, params=params, timeout=timeout)
        if resp.status_code >= 400:
            try:
                error = resp.json().get("error")
            except ValueError:
                error = {"message": (resp.text or "")[:500]}
            raise HttpError(resp.status_code, error, what)
        if not resp.content:
            return {}
        return resp.json()

    def call(self, method, path, body=None, params=None, context=None, timeout=(10, 120)):
        """One API call (a JSON answer), retried by the one retry helper when the failure is transient."""
        ctx = dict(context or {})
        what = ctx.get("what") or "%s %s" % (method, relative(path))
        return self.attempt(lambda: self._once(method, path, body, params, timeout, what), ctx, what)

    def get(self, path, params=None, context=None):
        return self.call("GET", path, params=params, context=context)

    def items(self, path, params=None, context=None):
        """Every item of a list call, over all pages (an empty list has no ``items`` key)."""
        params = dict(params or {})
        out = []
        while True:
            page = self.get(path, params=params, context=context)
            out.extend(page.get("items") or [])
            if not page.get("nextPageToken"):
                return out
            params["pageToken"] = page["nextPageToken"]

    def aggregated(self, kind, params=None, context=None):
        """Every item of ``aggregated/<kind>`` over all scopes and pages (scopes without any carry a warning)."""
        params = dict(params or {})
        out = []
        while True:
            page = self.get(self.path("aggregated", kind), params=params, context=context)
            for scoped in (page.get("items") or {}).values():
                out.extend(scoped.get(kind) or [])
            if not page.get("nextPageToken"):
                return out
            params["pageToken"] = page["nextPageToken"]

    def wait(self, op, deadline, context=None):
        """Await ``op`` with its scope's ``wait`` until ``DONE`` (``wait`` may return while still RUNNING) or the
        ``deadline`` (a ``clock()`` value). An operation that ends DONE with an error raises that error."""
        ctx = dict(context or {})
        while op.get("status") != "DONE":
            left = deadline - self.clock()
            if left <= 0:
                raise WaitTimeout("timed out waiting for %s (operation %s is %s)"
                                  % (ctx.get("what") or op.get("operationType") or "an operation", op.get("name"),
                                     op.get("status")),
                                  hint="Raise wait_timeout; the operation goes on in Compute Engine, and a re-run "
                                       "picks it up (its requestId is the same)")
            try:
                op = self.call("POST", relative(op["selfLink"]) + "/wait", context=dict(ctx, what="wait for %s" % (
                    ctx.get("what") or op.get("operationType"))), timeout=(10, min(150, left + 10)))
            except TransientError as exc:
                if self.clock() >= deadline:
                    raise
                self.log("gcp: waiting for %s: %s" % (op.get("name"), exc))
        err = classify_operation(op, ctx)
        if err is not None:
            raise err
        return op

    def wait_all(self, ops, deadline, context=None):
        """Await several operations; raise the first error after all of them ended."""
        first = None
        done = []
        for op in ops:
            if not op:
                continue
            try:
                done.append(self.wait(op, deadline, context))
            except CloudError as exc:
                first = first or exc
        if first is not None:
            raise first
        return done


def session_for(opts, log=None, sleep=time.sleep, environ=None):
    """A :class:`ComputeApi` for the options: credentials resolved, an AuthorizedSession, the endpoint."""
    creds, project, where = resolve_credentials(opts, environ)
    session = AuthorizedSession(creds)
    session.headers["User-Agent"] = "aiinfra.gpu_cluster"
    (log or (lambda msg: None))("gcp: project %s, credentials from %s" % (project, where))
    return ComputeApi(session, project, root=opts.get("endpoint_url") or DEFAULT_ENDPOINT, log=log, sleep=sleep)
