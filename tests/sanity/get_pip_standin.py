"""Stand-in for pypa's get-pip.py, which ansible-test downloads from the internet to bootstrap pip
into its sanity-test virtualenvs. Where that host is unreachable (CI here), this does the same job
from the standard library and the configured package index: ensurepip, then ``pip install`` of
the packages ansible-test asks for (pinned pip and friends)."""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
BUNDLE = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
if os.path.exists(BUNDLE):  # ansible-test passes a filtered environment; keep the system's trust store
    ARGS = ["--cert", BUNDLE] + ARGS
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + ARGS))
