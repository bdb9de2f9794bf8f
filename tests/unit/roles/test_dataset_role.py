"""What the dataset role hands on, rendered with Ansible's templar from the real role files: the torchrun job's
AIINFRA_DATA_DIR (from dataset_dir, the user's torchrun_env still winning) and the client's install stamp."""

from __future__ import annotations

import os

import pytest

from test_role_rendering import ROLES, render, role_vars  # (importing it installs the collection loader)


@pytest.mark.parametrize("extra,expected", [
    ({}, {}),
    ({"dataset_dir": "/data/imagenet"}, {"AIINFRA_DATA_DIR": "/data/imagenet"}),
    ({"dataset_dir": "/data/imagenet", "torchrun_env": {"AIINFRA_DATA_DIR": "/mine", "OMP_NUM_THREADS": "4"}},
     {"AIINFRA_DATA_DIR": "/mine", "OMP_NUM_THREADS": "4"}),
    ({"dataset_dir": "/d", "torchrun_env": "OMP_NUM_THREADS=4"}, {"AIINFRA_DATA_DIR": "/d", "OMP_NUM_THREADS": "4"}),
])
def test_the_job_sees_the_data_dir(extra, expected):
    variables = role_vars("torchrun", "debian-12", role_path=os.path.join(ROLES, "torchrun"), **extra)
    inputs = render("{{ torchrun_inputs }}", variables)
    assert inputs["torchrun_env"] == expected
    assert inputs["torchrun_nproc_per_node"] == "auto"  # the rest as the role's own lookup types it


def test_client_stamp_changes_with_the_package_and_settings():
    variables = role_vars("dataset", "debian-12", gpu_cluster_cloud="aws", role_path=os.path.join(ROLES, "dataset"))
    first = render("{{ dataset_client_stamp }}", variables)
    assert len(first) == 64 and first == render("{{ dataset_client_stamp }}", variables)
    other = render("{{ dataset_client_stamp }}", dict(variables, dataset_client_packages=["boto3==1.35.0"]))
    assert other != first
    files = render("{{ dataset_client_package_files | map('basename') | list }}", variables)
    assert {"__init__.py", "cli.py", "base.py", "s3.py", "sync.py"} <= set(files)
