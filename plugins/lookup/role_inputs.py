# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: role_inputs
short_description: A role's variables typed as its meta/argument_specs.yml declares them
version_added: 0.1.0
description:
  - Returns a dict of every option of one of this collection's roles (one entry point of its
    C(meta/argument_specs.yml)), each converted to the option's type from what users type in C(-e),
    an AWX survey or a vars file.
  - ansible-core validates role variables against the argument spec but passes the role the raw
    values, so C("no"), C("8") and C("alice bob") stay strings. This lookup converts them with
    ansible-core's own converters (bool, int, dict from JSON or C(k=v), str), except that a string
    given for a list is split the way a shell would split it (C("--steps 60") gives
    C(["--steps", "60"])), or read as a YAML/JSON list when written as one.
  - A value that does not convert fails the task with a message naming the variable (for lists,
    showing the list form). Paths are returned as typed.
  - Roles define C(<role>_inputs) with it in C(vars/main.yml) and read their variables from there.
author:
  - aiinfra platform team (@aiinfra)
options:
  _terms:
    description: The role's name in this collection (one term).
    required: true
    type: list
    elements: str
  entry_point:
    description: The argument_specs entry point whose options are returned.
    type: str
    default: main
"""

EXAMPLES = r"""
# roles/docker/vars/main.yml holds
#   docker_inputs: "{{ lookup('aiinfra.gpu_cluster.role_inputs', 'docker') }}"
# and the role's tasks read docker_inputs.<variable>: -e 'docker_users="alice bob"' loops over two users.
- name: Add the users to the docker group
  ansible.builtin.user:
    name: "{{ item }}"
    groups: docker
    append: true
  loop: "{{ docker_inputs.docker_users }}"

- name: Show one entry point's variables, typed
  ansible.builtin.debug:
    msg: "{{ lookup('aiinfra.gpu_cluster.role_inputs', 'docker', entry_point='validate') }}"
"""

RETURN = r"""
_raw:
  description: One dict, option name -> typed value, for every option of the entry point.
  type: list
  elements: dict
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import role_inputs

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("role_inputs takes one role name, got %r" % (terms,))
        role = terms[0]
        variables = variables or {}
        try:
            options = role_inputs.load_options(os.path.join(COLLECTION_ROOT, "roles", role),
                                               self.get_option("entry_point"))
            given = dict((name, variables[name]) for name in options if name in variables)
            given = self._templar.template(given)
            return [role_inputs.typed_inputs(options, given, context="aiinfra.gpu_cluster." + role)]
        except (OSError, role_inputs.RoleInputError) as exc:
            raise AnsibleLookupError(str(exc))
