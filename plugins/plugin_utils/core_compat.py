# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place the collection reaches into ansible-core's internals.

``torchrun_watch`` polls every node from one controller process, so it opens connections itself, as the
task executor does (``connection_loader``, the play context, the connection's option variables). Those are
not public APIs and they moved between releases: ``Connection._resolve_option_variables`` appeared in 2.17;
2.16's ``TaskExecutor._set_connection_options`` did the same inline. Every such use is here, keyed by the
ansible-core version, and a version this file does not know fails with one clear message (before a single
node is polled) instead of an ``AttributeError`` that would read as every node lost.

``KNOWN`` must agree with ``requires_ansible`` in ``meta/runtime.yml`` (a unit test checks it).
"""

from __future__ import annotations

import os
import re

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.loader import become_loader, connection_loader
from ansible.release import __version__ as CORE_VERSION

#: the ansible-core minor versions this adapter knows, lowest and highest (both tested in CI)
KNOWN = ((2, 16), (2, 19))


class UnsupportedCore(AnsibleError):
    """ansible-core is a version whose internals this collection has not been checked against."""


def core_version(text=None):
    """(major, minor) of ansible-core (``text``: a version string, default the running one)."""
    match = re.match(r"(\d+)\.(\d+)", text or CORE_VERSION)
    if not match:
        raise UnsupportedCore("aiinfra.gpu_cluster: cannot read the ansible-core version %r" % (text or CORE_VERSION))
    return int(match.group(1)), int(match.group(2))


def require_known(feature, text=None):
    """The running (or given) ansible-core version as (major, minor); raises :class:`UnsupportedCore` naming
    ``feature`` and the versions known when it is outside :data:`KNOWN`."""
    version = core_version(text)
    low, high = KNOWN
    if not low <= version <= high:
        raise UnsupportedCore(
            "%s: ansible-core %s is not a version aiinfra.gpu_cluster knows (it works with %d.%d to %d.%d, "
            "meta/runtime.yml requires_ansible); it uses ansible-core internals to open its own connections "
            "and will not guess at them. Use ansible-core %d.%d-%d.%d, or a collection release that supports %s."
            % (feature, text or CORE_VERSION, low[0], low[1], high[0], high[1], low[0], low[1], high[0], high[1],
               text or CORE_VERSION))
    return version


def _option_variables_216(connection, variables, templar):
    """ansible-core 2.16: what TaskExecutor._set_connection_options builds inline (2.17 moved it to
    ``Connection._resolve_option_variables``)."""
    options = {"_extras": {}}
    for name in C.config.get_plugin_vars("connection", connection._load_name):
        if name in variables:
            options[name] = templar.template(variables[name])
    if getattr(connection, "allow_extras", False):
        prefix = "ansible_%s_" % connection.extras_prefix
        for name in variables:
            if name.startswith(prefix) and name not in options:
                options["_extras"][name] = templar.template(variables[name])
    return options


def connection_option_variables(connection, variables, templar, version=None):
    """The connection's ``var_options`` from ``variables``, as this ansible-core's task executor makes them."""
    version = version or require_known("torchrun_watch")
    if version == (2, 16):
        return _option_variables_216(connection, variables, templar)
    return connection._resolve_option_variables(variables, templar)


def host_connection(action, host, task_vars, become=False):
    """A connection to ``host`` made as Ansible makes a task's connection: the connection plugin and its options
    from the host's own inventory variables (ansible_connection, ansible_host, ansible_port, ansible_user, keys,
    ssh args ...), the task's keywords and the configuration. Polls run as the login user (no become); with
    ``become`` (the launch: the task's ``become``) the become plugin is set up as the task executor sets it up (the
    host's ``ansible_become*`` variables win over the task's keywords). ``action`` is the running action plugin (its
    play context, task and templar)."""
    version = require_known("torchrun_watch")
    hostvars = task_vars["hostvars"][host]

    def var(name, default=None):
        try:
            return hostvars[name] if name in hostvars else default
        except Exception:  # a variable that does not template: leave it to the plugin's default
            return default
    name = var("ansible_connection") or action._play_context.connection or "ssh"
    if name == "smart":
        name = "ssh"
    play_context = action._play_context.copy()
    play_context.remote_addr = var("ansible_host", host)
    play_context.remote_user = var("ansible_user", play_context.remote_user)
    play_context.port = var("ansible_port", None)
    connection = connection_loader.get(name, play_context, None, task_uuid=action._task._uuid,
                                       ansible_playbook_pid=to_text(os.getppid()))
    if connection is None:
        raise AnsibleError("torchrun_watch: no connection plugin %r for %s" % (name, host))
    wanted = set(C.config.get_plugin_vars("connection", connection._load_name))
    shell_vars = set(C.config.get_plugin_vars("shell", connection._shell._load_name))
    variables = {"inventory_hostname": host}
    for key in wanted | shell_vars:
        value = var(key, variables)
        if value is not variables:
            variables[key] = value
    task_keys = action._task.dump_attrs()
    task_keys["timeout"] = play_context.timeout
    task_keys.pop("retries", None)
    connection.set_become_plugin(None)
    connection.set_options(task_keys=task_keys,
                           var_options=connection_option_variables(connection, variables, action._templar, version))
    connection._shell.set_options(task_keys=task_keys, var_options=dict(
        (k, variables[k]) for k in shell_vars if k in variables))
    if var("ansible_become") is not None:
        become = boolean(var("ansible_become"))
    if become:
        connection.set_become_plugin(host_become(action, var, task_keys))
    return connection


def host_become(action, var, task_keys):
    """The become plugin of a task on a host (what TaskExecutor._set_become_plugin and _set_plugin_options do): the
    method from ``ansible_become_method`` or the task, its options from the host's variables and the task's
    keywords, the become password of the play context (``--ask-become-pass``) when there is one."""
    name = var("ansible_become_method") or action._task.become_method or "sudo"
    plugin = become_loader.get(name)
    if plugin is None:
        raise AnsibleError("no become plugin %r" % (name,))
    options = {}
    for key in C.config.get_plugin_vars("become", plugin._load_name):
        value = var(key, options)
        if value is not options:
            options[key] = value
    plugin.set_options(task_keys=task_keys, var_options=options)
    if getattr(action._play_context, "become_pass", None) and not plugin.get_option("become_pass"):
        plugin.set_option("become_pass", action._play_context.become_pass)
    return plugin
