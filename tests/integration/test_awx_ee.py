"""The execution environment an AWX admin builds: ``ansible-builder create`` offline on the collection's example
execution-environment.yml, and the context it generates must carry our Python and system dependencies.

Building the image needs a registry; creating the context does not. The dependencies of a collection are found
at build time by the context's own introspection script over the collections its galaxy stage installed: here the
same script runs on the collection installed from the context's own requirements.yml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import yaml

import awx_job
from conftest import ROOT, VENV_BIN


def read_requirements(path):
    with open(path) as handle:
        return [line.split("#")[0].strip() for line in handle if line.split("#")[0].strip()]


def test_ansible_builder_context_carries_our_dependencies(tmp_path):
    tarball = awx_job.build_tarball(tmp_path / "dist")
    ee = tmp_path / "ee"
    ee.mkdir()
    shutil.copy(os.path.join(awx_job.AWX, "execution-environment.yml"), str(ee))
    shutil.copy(tarball, str(ee))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f", "execution-environment.yml",
                           "-c", "context", "--output-filename", "Containerfile"], cwd=str(ee), env=awx_job.clean_env(),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    context = ee / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "introspect.py introspect" in containerfile
    build = context / "_build"
    assert (build / os.path.basename(tarball)).exists()                # additional_build_files
    with open(str(build / "requirements.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    assert [c["name"] for c in galaxy["collections"]] == [os.path.basename(tarball)]

    # the galaxy stage (WORKDIR /build: the context's _build) ...
    colls = tmp_path / "usr-share-ansible-collections"
    installed = awx_job.install(["-r", "requirements.yml"], colls, cwd=build)
    assert os.path.isfile(os.path.join(installed, "meta", "execution-environment.yml"))
    # ... and the builder stage's introspection, the context's own script
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = subprocess.run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", "--sanitize",
                           "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), str(colls)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    python = pip_out.read_text()
    system = bindep_out.read_text()
    for requirement in read_requirements(os.path.join(ROOT, "meta", "ee-requirements.txt")):
        name = requirement.split(">")[0].split("=")[0].split("<")[0].strip()
        assert name in python, (name, python)
    assert "# from collection aiinfra.gpu_cluster" in python
    for package in ("openssh-client [platform:dpkg]", "openssh-clients [platform:rpm]", "rsync"):
        assert package in system, (package, system)
    assert "# from collection aiinfra.gpu_cluster" in system
    # the controller needs none of Ansible itself from us (the EE brings ansible-core)
    assert "ansible" not in [line.split(">")[0].split("=")[0].strip() for line in python.splitlines()]
