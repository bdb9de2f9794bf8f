# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The podman CLI, as the local cloud uses it: a thin runner (JSON out, classified errors in)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import (
    CloudError, ConfigError, NotFoundError, TransientError)
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.retry import RetryPolicy, call

INSTALL_HINT = ("Install podman on the controller: 'apt-get install podman runc' (Debian/Ubuntu) or "
                "'dnf install podman' (RHEL/Fedora); 'make setup' does it for you")


class Podman(object):
    """A thin runner around the podman CLI (JSON out, classified errors in)."""

    def __init__(self, binary=None, conf=None, timeout=300):
        self.binary = binary or shutil.which("podman")
        if not self.binary:
            raise ConfigError("podman is not installed on the controller (the local cloud runs nodes as podman "
                              "containers)", hint=INSTALL_HINT)
        self.env = dict(os.environ)
        if conf:
            self.env["CONTAINERS_CONF"] = conf
        self.timeout = timeout
        self.calls = 0

    def run(self, *args, **kwargs):
        """Run podman; a transient failure (lock contention, a slow answer) is retried by the one retry helper."""
        return call(lambda: self._run_once(*args, **kwargs), policy=RetryPolicy(attempts=4, base=0.5, cap=4.0))

    def _run_once(self, *args, **kwargs):
        stdin = kwargs.pop("stdin", None)
        check = kwargs.pop("check", True)
        timeout = kwargs.pop("timeout", self.timeout)
        self.calls += 1
        try:
            proc = subprocess.run([self.binary] + list(args), input=stdin, capture_output=True, text=True,
                                  env=self.env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TransientError("podman %s did not answer within %ss" % (args[0], timeout))
        if check and proc.returncode != 0:
            raise classify_podman(args, proc.returncode, proc.stderr)
        return proc

    def json(self, *args):
        out = self.run(*args).stdout.strip()
        return json.loads(out) if out else []


def classify_podman(args, rc, stderr):
    text = (stderr or "").strip().splitlines()
    msg = text[-1] if text else "exit code %s" % rc
    what = "podman %s" % " ".join(args[:2])
    low = msg.lower()
    if "no such" in low or "not found" in low or "does not exist" in low:
        return NotFoundError("%s: %s" % (what, msg))
    if "permission denied" in low or "operation not permitted" in low:
        return ConfigError("%s: %s" % (what, msg), hint="Run as root, or configure rootless podman (subuid/subgid)")
    # "container state improper" / "resource busy": a removal racing the container's own stop (seen under load)
    if ("locked" in low or "timeout" in low or "temporarily" in low or "state improper" in low
            or "resource busy" in low):
        return TransientError("%s: %s" % (what, msg))
    return CloudError("%s: %s" % (what, msg))
