"""podman errors seen under load when a removal races the container's own stop are retried, not fatal."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.errors import CloudError, TransientError
from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils._cloud.local import classify_podman


def test_a_removal_racing_the_stop_is_transient():
    for err in ("Error: cannot remove container 07cd as it could not be stopped: sending SIGKILL to container 07cd: "
                "container state improper: stopped",
                "Error: removing container a669 root filesystem: unlinkat /var/lib/containers/storage/x/shm: "
                "device or resource busy"):
        assert isinstance(classify_podman(["rm", "-f"], 125, err), TransientError)
    other = classify_podman(["rm", "-f"], 125, "Error: something else")
    assert isinstance(other, CloudError) and not isinstance(other, TransientError)
