"""What AWX's built-in cloud credential types put into a job's environment, as AWX's own code does it.

Transcribed from AWX (github.com/ansible/awx, ``awx/main/models/credential/injectors.py`` before it moved to
awx-plugins: functions ``aws``, ``gce`` and ``azure_rm``), with the credential types' input names
(``awx/main/models/credential/__init__.py``: "Amazon Web Services" username/password/security_token, "Google
Compute Engine" username/project/ssh_key_data, "Microsoft Azure Resource Manager" subscription/client/secret/
tenant/username/password/cloud_environment). ``private_data_dir`` is the job's; AWX writes the GCE key file into
its ``env/`` and names it by its path inside the container (the same path here: no container).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile


def aws(inputs, env, private_data_dir=None):
    env["AWS_ACCESS_KEY_ID"] = inputs.get("username", "")
    env["AWS_SECRET_ACCESS_KEY"] = inputs.get("password", "")
    if "security_token" in inputs:
        env["AWS_SECURITY_TOKEN"] = inputs.get("security_token", "")
        env["AWS_SESSION_TOKEN"] = env["AWS_SECURITY_TOKEN"]
    return env


def gce(inputs, env, private_data_dir):
    project = inputs.get("project", "")
    username = inputs.get("username", "")
    json_cred = {"type": "service_account", "private_key": inputs.get("ssh_key_data", ""), "client_email": username,
                 "project_id": project}
    if "INVENTORY_UPDATE_ID" not in env:
        env["GCE_EMAIL"] = username
        env["GCE_PROJECT"] = project
    json_cred["token_uri"] = "https://oauth2.googleapis.com/token"
    handle, path = tempfile.mkstemp(dir=os.path.join(str(private_data_dir), "env"))
    with os.fdopen(handle, "w") as f:
        json.dump(json_cred, f, indent=2)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    env["GCE_CREDENTIALS_FILE_PATH"] = path
    env["GCP_SERVICE_ACCOUNT_FILE"] = path
    env["GOOGLE_APPLICATION_CREDENTIALS"] = path
    env["GCP_AUTH_KIND"] = "serviceaccount"
    env["GCP_PROJECT"] = project
    env["GCP_ENV_TYPE"] = "tower"
    return env


def azure_rm(inputs, env, private_data_dir=None):
    client = inputs.get("client", "")
    tenant = inputs.get("tenant", "")
    env["AZURE_SUBSCRIPTION_ID"] = inputs.get("subscription", "")
    if len(client) and len(tenant):
        env["AZURE_CLIENT_ID"] = client
        env["AZURE_TENANT"] = tenant
        env["AZURE_SECRET"] = inputs.get("secret", "")
    else:
        env["AZURE_AD_USER"] = inputs.get("username", "")
        env["AZURE_PASSWORD"] = inputs.get("password", "")
    if "cloud_environment" in inputs:
        env["AZURE_CLOUD_ENVIRONMENT"] = inputs["cloud_environment"]
    return env


def custom(credential_type, inputs, env):
    """A custom credential type's ``env`` injectors (AWX renders them with Jinja over the inputs; ours are plain
    ``{{ field }}`` references)."""
    for name, template in (credential_type.get("injectors") or {}).get("env", {}).items():
        field = template.strip().strip("{}").strip()
        env[name] = str(inputs.get(field, ""))
    return env
