"""Benchmark-only shim for azure.azcollection on current azure-cli-core (put on PYTHONPATH by bench_azure.py).

azure.azcollection resolves ``cloud_environment: <URL>`` with ``azure.cli.core.cloud.get_cloud_from_metadata_endpoint``,
which azure-cli-core no longer has. This puts it back, built from azure-cli-core's own ARM-metadata mapper.
"""

try:
    import json
    import urllib.request

    import azure.cli.core.cloud as _cloud

    if not hasattr(_cloud, "get_cloud_from_metadata_endpoint"):
        def get_cloud_from_metadata_endpoint(url, name=None, session=None):  # pylint: disable=unused-argument
            with urllib.request.urlopen(url) as response:  # nosec - the benchmark's own double
                doc = json.loads(response.read().decode("utf-8"))
            if isinstance(doc, list):
                doc = doc[0]
            return _cloud._arm_to_cli_mapper(doc)  # pylint: disable=protected-access

        _cloud.get_cloud_from_metadata_endpoint = get_cloud_from_metadata_endpoint
except ImportError:
    pass
