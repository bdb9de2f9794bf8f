"""A small AWX REST API (``/api/v2/``) on loopback, for ``awx import`` (awxkit's own CLI and import code) to load the
collection's assets into, starting empty but for what a fresh AWX has: the organization "Default" and AWX's managed
credential types.

It answers the calls awxkit's import makes (``awxkit/api/pages/api.py``: ``_import_list`` OPTIONS for the POST fields,
natural-key lookups as filtered list GETs, POST to create, PUT to update; ``_assign_related`` attach POSTs
``{"id": N}`` answered ``204 No Content``, survey specs POSTed whole and answered ``200`` with no body) with AWX's
shapes (``id``, ``type``, ``url``, ``related`` links the natural keys are computed from, paginated lists) and with the
validations of AWX's views that this import meets (``awx/api/views/__init__.py``):

- ``JobTemplateCredentialsList.is_valid_relation``: one credential per credential type; kinds ssh, vault, cloud,
  net, kubernetes only ("Cannot assign multiple ... credentials.");
- ``LaunchConfigCredentialsBase.is_valid_relation`` (a workflow node's credentials): the template must ask for
  credentials on launch ("Related template is not configured to accept credentials on launch."), one per type, not
  one the template already has;
- a job template's playbook must be in its project ("Playbook not found for project."), FKs that are required must
  be set ("This field may not be null.");
- ``CredentialTypeInjectorField``: env names matching ``^[a-zA-Z_]+[a-zA-Z0-9_]*$``, none starting ``ANSIBLE_``;
  a custom type's kind is ``cloud`` or ``net``;
- survey specs (``JobTemplateSurveySpec.post``): a multiplechoice default must be one of its choices.

``log`` lists every request and answer (method, path, status), ``objects(kind)`` what was created.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from urllib.parse import parse_qsl, urlparse

MANAGED_TYPES = [  # AWX's managed credential types this import refers to (name, kind, namespace)
    ("Machine", "ssh", "ssh"), ("Source Control", "scm", "scm"), ("Vault", "vault", "vault"),
    ("Amazon Web Services", "cloud", "aws"), ("Google Compute Engine", "cloud", "gce"),
    ("Microsoft Azure Resource Manager", "cloud", "azure_rm"), ("Container Registry", "registry", "registry"),
]

# list endpoint -> (type, natural-key FKs that live in related, POST fields {name: type}, required fields)
KINDS = {
    "organizations": ("organization", {"name": "string", "description": "string"}, ["name"]),
    "users": ("user", {"username": "string", "password": "string"}, ["username"]),
    "teams": ("team", {"name": "string", "organization": "id"}, ["name", "organization"]),
    "credential_types": ("credential_type", {"name": "string", "description": "string", "kind": "choice",
                                             "inputs": "json", "injectors": "json"}, ["name", "kind"]),
    "credentials": ("credential", {"name": "string", "description": "string", "organization": "id",
                                   "credential_type": "id", "inputs": "json"}, ["name", "credential_type"]),
    "notification_templates": ("notification_template", {"name": "string", "organization": "id"}, ["name"]),
    "execution_environments": ("execution_environment", {"name": "string", "description": "string", "image": "string",
                                                         "pull": "choice", "organization": "id", "credential": "id"},
                               ["name", "image"]),
    "projects": ("project", {"name": "string", "description": "string", "scm_type": "choice", "scm_url": "string",
                             "scm_branch": "string", "scm_update_on_launch": "boolean", "allow_override": "boolean",
                             "organization": "id", "default_environment": "id", "credential": "id",
                             "local_path": "string"}, ["name", "organization"]),
    "inventories": ("inventory", {"name": "string", "description": "string", "organization": "id", "kind": "choice",
                                  "variables": "string"}, ["name", "organization"]),
    "hosts": ("host", {"name": "string", "description": "string", "inventory": "id", "variables": "string"},
              ["name", "inventory"]),
    "inventory_sources": ("inventory_source", {"name": "string", "inventory": "id"}, ["name", "inventory"]),
    "job_templates": ("job_template", {"name": "string", "description": "string", "job_type": "choice",
                                       "playbook": "string", "organization": "id", "project": "id", "inventory": "id",
                                       "execution_environment": "id", "forks": "integer", "verbosity": "choice",
                                       "extra_vars": "string", "ask_variables_on_launch": "boolean",
                                       "ask_credential_on_launch": "boolean", "ask_inventory_on_launch": "boolean",
                                       "survey_enabled": "boolean"}, ["name", "project", "playbook"]),
    "workflow_job_templates": ("workflow_job_template", {"name": "string", "description": "string",
                                                         "organization": "id", "inventory": "id",
                                                         "extra_vars": "string", "ask_variables_on_launch": "boolean",
                                                         "survey_enabled": "boolean"}, ["name"]),
    "workflow_job_template_nodes": ("workflow_job_template_node", {"identifier": "string",
                                                                   "unified_job_template": "id",
                                                                   "workflow_job_template": "id"},
                                    ["identifier", "workflow_job_template"]),
    "applications": ("application", {"name": "string", "organization": "id"}, ["name", "organization"]),
    "schedules": ("schedule", {"name": "string", "rrule": "string"}, ["name", "rrule"]),
    "system_job_templates": ("system_job_template", {}, []),
    "labels": ("label", {"name": "string", "organization": "id"}, ["name", "organization"]),
    "instance_groups": ("instance_group", {"name": "string"}, ["name"]),
}
ROOT_NAMES = {"inventories": "inventory"}  # /api/v2/ names the inventories list "inventory"
FKS = {"organization": "organizations", "credential_type": "credential_types", "inventory": "inventories",
       "project": "projects", "execution_environment": "execution_environments", "default_environment":
       "execution_environments", "credential": "credentials", "workflow_job_template": "workflow_job_templates",
       "unified_job_template": "job_templates"}
ENV_NAME = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")


class AwxApi(object):
    def __init__(self, project_dir):
        self.project_dir = project_dir   # what the project's update would find (the playbooks of the project)
        self.db = dict((kind, {}) for kind in KINDS)
        self.links = {}                  # (kind, id, relation) -> [ids]
        self.surveys = {}                # (kind, id) -> spec
        self.log = []
        self.lock = threading.Lock()
        self._next = 1
        self._create("organizations", {"name": "Default", "description": ""})
        for name, kind, namespace in MANAGED_TYPES:
            self._create("credential_types", {"name": name, "kind": kind, "namespace": namespace, "managed": True,
                                              "inputs": {}, "injectors": {}, "description": ""})
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                with api.lock:
                    status, payload, headers = api.handle(method, url.path, dict(parse_qsl(url.query)),
                                                          json.loads(body) if body else None)
                    api.log.append((method, url.path, status))
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in dict({"Content-Type": "application/json"}, **headers).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def do_PUT(self):  # noqa: N802
                self._answer("PUT")

            def do_OPTIONS(self):  # noqa: N802
                self._answer("OPTIONS")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # -- the model ---------------------------------------------------------------------------------------------
    def _create(self, kind, fields):
        obj = dict(fields, id=self._next, type=KINDS[kind][0])
        self._next += 1
        if kind == "projects":
            obj["status"] = "successful"  # its first project update, done
        self.db[kind][obj["id"]] = obj
        return obj

    def objects(self, kind):
        return list(self.db[kind].values())

    def by_name(self, kind, name):
        found = [o for o in self.db[kind].values() if o.get("name", o.get("identifier")) == name]
        return found[0] if found else None

    def render(self, kind, obj):
        path = "/api/v2/%s/%d/" % (kind, obj["id"])
        related = {}
        for field, target in FKS.items():
            if obj.get(field):
                related[field] = "/api/v2/%s/%d/" % (target, obj[field])
        for relation in RELATIONS.get(kind, ()):
            related[relation] = path + relation + "/"
        out = dict((k, v) for k, v in obj.items() if k != "credentials")
        out.update(url=path, related=related, summary_fields={})
        return out

    def listing(self, kind, items, query):
        filters = dict((k, v) for k, v in query.items() if k not in ("page", "page_size", "order_by"))
        results = [self.render(kind, o) for o in items
                   if all(str(o.get(k)) == v for k, v in filters.items())]
        return {"count": len(results), "next": None, "previous": None, "results": results}

    # -- requests ----------------------------------------------------------------------------------------------
    def handle(self, method, path, query, body):
        if path == "/api/":
            return 200, {"description": "AWX REST API", "current_version": "/api/v2/",
                         "available_versions": {"v2": "/api/v2/"}}, {}
        if path == "/api/v2/":
            return 200, dict((ROOT_NAMES.get(k, k), "/api/v2/%s/" % k) for k in KINDS), {}
        if path == "/api/v2/me/":
            return 200, {"count": 1, "results": [{"id": 1, "type": "user", "username": "admin"}]}, {}
        parts = [p for p in path.split("/") if p][2:]
        if not parts or parts[0] not in KINDS:
            return 404, {"detail": "Not found."}, {}
        kind = parts[0]
        if len(parts) == 1:
            return self.list_endpoint(kind, method, query, body, {})
        obj = self.db[kind].get(int(parts[1])) if parts[1].isdigit() else None
        if obj is None:
            return 404, {"detail": "Not found."}, {}
        if len(parts) == 2:
            if method == "GET":
                return 200, self.render(kind, obj), {}
            if method == "PUT":
                merged = dict(obj, **self.fields(kind, body))
                error = self.validate(kind, merged, obj)
                if error:
                    return 400, error, {}
                obj.update(self.fields(kind, body))
                return 200, self.render(kind, obj), {}
            return 405, {"detail": 'Method "%s" not allowed.' % method}, {}
        return self.sub_endpoint(kind, obj, parts[2], method, query, body)

    def fields(self, kind, body):
        return dict((k, v) for k, v in (body or {}).items() if k in KINDS[kind][1])

    def list_endpoint(self, kind, method, query, body, fixed):
        if method == "OPTIONS":
            post = dict((name, {"type": t, "required": name in KINDS[kind][2]}) for name, t in KINDS[kind][1].items())
            return 200, {"name": kind, "actions": {"POST": post, "GET": {}}}, {"Allow": "GET, POST, HEAD, OPTIONS"}
        items = [o for o in self.db[kind].values() if all(o.get(k) == v for k, v in fixed.items())]
        if method == "GET":
            return 200, self.listing(kind, items, query), {}
        if method == "POST":
            body = dict(self.fields(kind, body), **fixed)
            error = self.validate(kind, body, None)
            if error:
                return 400, error, {}
            return 201, self.render(kind, self._create(kind, body)), {}
        return 405, {"detail": 'Method "%s" not allowed.' % method}, {}

    def validate(self, kind, body, existing):
        for name in KINDS[kind][2]:
            if body.get(name) in (None, ""):
                return {name: ["This field may not be null." if KINDS[kind][1][name] == "id"
                               else "This field is required."]}
        for name, value in body.items():
            if KINDS[kind][1].get(name) == "id" and value is not None and value not in self.db[FKS[name]]:
                return {name: ['Invalid pk "%s" - object does not exist.' % value]}
        if kind == "credential_types":
            if body["kind"] not in ("cloud", "net"):
                return {"kind": ["Must be 'cloud' or 'net', not %s" % body["kind"]]}
            fields = [f["id"] for f in (body.get("inputs") or {}).get("fields", [])]
            for name, template in (body.get("injectors") or {}).get("env", {}).items():
                if not ENV_NAME.match(name) or name.startswith("ANSIBLE_"):
                    return {"injectors": ["Environment variable %s may affect Ansible configuration so its use is "
                                          "not allowed in credentials." % name]}
                used = re.findall(r"{{\s*(\w+)", template)
                if [u for u in used if u not in fields and u != "tower"]:
                    return {"injectors": ["%s uses an undefined field (%s)" % (name, used)]}
        if kind == "job_templates":
            project = self.db["projects"][body["project"]]
            if not os.path.isfile(os.path.join(self.project_dir, body["playbook"])):
                return {"playbook": ["Playbook not found for project."]}
            assert project["status"] == "successful"
        duplicate = [o for o in self.db[kind].values() if o is not existing and o.get("name") is not None
                     and o.get("name") == body.get("name") and o.get("organization") == body.get("organization")
                     and o.get("credential_type") == body.get("credential_type") and o.get("kind") == body.get("kind")
                     and o.get("inventory") == body.get("inventory")]
        if duplicate and kind not in ("workflow_job_template_nodes",):
            return {"__all__": ["%s with this Name and Organization already exists." % KINDS[kind][0]]}
        return None

    def sub_endpoint(self, kind, obj, relation, method, query, body):
        if relation == "survey_spec":
            if method == "GET":
                return 200, self.surveys.get((kind, obj["id"]), {}), {}
            for question in body.get("spec", []):
                if question["type"] == "multiplechoice" and question.get("default"):
                    choices = question["choices"].split("\n") if isinstance(question["choices"], str) \
                        else question["choices"]
                    if question["default"] not in choices:
                        return 400, {"error": "Default choice must be answered from the choices listed."}, {}
            self.surveys[(kind, obj["id"])] = body
            return 200, None, {}
        if (kind, relation) in CREATE_SETS:
            child, fk = CREATE_SETS[(kind, relation)]
            return self.list_endpoint(child, method, query, body, {fk: obj["id"]})
        if relation not in RELATIONS.get(kind, ()):
            return 404, {"detail": "Not found."}, {}
        target_kind = "credentials" if relation == "credentials" else kind
        linked = self.links.setdefault((kind, obj["id"], relation), [])
        if method == "OPTIONS":
            return 200, {"actions": {}}, {"Allow": "GET, POST, HEAD, OPTIONS"}
        if method == "GET":
            return 200, self.listing(target_kind, [self.db[target_kind][i] for i in linked], query), {}
        sub = self.db[target_kind].get(body.get("id"))
        if sub is None:
            return 400, {"msg": "Related object not found."}, {}
        error = self.attach_error(kind, obj, relation, sub, linked)
        if error:
            return 400, error, {}
        if sub["id"] not in linked:
            linked.append(sub["id"])
        return 204, None, {}

    def attach_error(self, kind, obj, relation, sub, linked):
        if relation != "credentials":
            return None
        ctype = self.db["credential_types"][sub["credential_type"]]
        same_type = [c for c in linked if self.db["credentials"][c]["credential_type"] == sub["credential_type"]]
        if kind == "job_templates":
            if same_type:
                return {"error": "Cannot assign multiple %s credentials." % ctype["name"]}
            if ctype["kind"] not in ("ssh", "vault", "cloud", "net", "kubernetes"):
                return {"error": "Cannot assign a Credential of kind `%s`." % ctype["kind"]}
            return None
        template = self.db["job_templates"].get(obj.get("unified_job_template"))
        if template is None:
            return {"msg": "Cannot assign credential when related template is null."}
        if not template.get("ask_credential_on_launch"):
            return {"msg": "Related template is not configured to accept credentials on launch."}
        if same_type:
            return {"msg": "This launch configuration already provides a %s credential." % ctype["name"]}
        if sub["id"] in self.links.get(("job_templates", template["id"], "credentials"), []):
            return {"msg": "Related template already uses %s credential." % sub["name"]}
        return None


RELATIONS = {
    "job_templates": ("credentials", "survey_spec"),
    "workflow_job_templates": ("survey_spec", "workflow_nodes"),
    "inventories": ("hosts",),
    "workflow_job_template_nodes": ("credentials", "success_nodes", "failure_nodes", "always_nodes"),
}
CREATE_SETS = {("inventories", "hosts"): ("hosts", "inventory"),
               ("workflow_job_templates", "workflow_nodes"): ("workflow_job_template_nodes", "workflow_job_template")}
