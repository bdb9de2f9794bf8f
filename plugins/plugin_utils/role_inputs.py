# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's variables typed the way its meta/argument_specs.yml declares them, from what users type.

ansible-core 2.19 checks a role's variables against meta/argument_specs.yml (the task "Validating
arguments against arg spec") but hands the role the raw values: it converts a copy and throws it
away. So ``-e docker_users="alice bob"`` passes (for the check a string becomes a list by splitting
on commas: ``["alice bob"]``) and the role then loops over the string's characters; ``-e
nvidia_driver_reboot=no`` and ``-e nvidia_driver_reboot_batch_size=8`` reach the role as the strings
"no" and "8"; ``docker_daemon_options='{"debug": true}'`` as a string.

``typed_inputs`` converts every option of one entry point once, with ansible-core's own converters
(the very ones that validation used) and one difference: a string given for a list is split the way
a shell would split it (``"--steps 60"`` -> ``["--steps", "60"]``; quotes keep spaces), or read as a
YAML/JSON list when it is written as one (``'["a", "b"]'``). A value that cannot be converted is
rejected with a message naming the variable and showing the list form. Paths stay as typed (they
may be paths on the node, where the controller's ``~`` means nothing).
"""

from __future__ import annotations

import os
import shlex

import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# the keys of an option the converters act on (the rest is documentation)
_SPEC_KEYS = ("type", "elements", "choices", "default", "required", "options", "no_log", "aliases")
_cache = {}


class RoleInputError(ValueError):
    """A value that does not fit the option's type; the message names the variable and the fix."""


def load_options(role_dir, entry_point="main"):
    """The options of ``entry_point`` in ``role_dir``/meta/argument_specs.yml (cached per file version)."""
    path = os.path.join(role_dir, "meta", "argument_specs.yml")
    stamp = os.stat(path).st_mtime_ns
    key = (path, entry_point)
    if key not in _cache or _cache[key][0] != stamp:
        with open(path) as handle:
            specs = (yaml.safe_load(handle) or {}).get("argument_specs") or {}
        if entry_point not in specs:
            raise RoleInputError("%s has no entry point %r (it has: %s)" % (path, entry_point, ", ".join(sorted(specs))))
        _cache[key] = (stamp, specs[entry_point].get("options") or {})
    return _cache[key][1]


def _converter_spec(option):
    spec = dict((k, option[k]) for k in _SPEC_KEYS if k in option)
    for key in ("type", "elements"):
        if spec.get(key) == "path":
            spec[key] = "str"
    if isinstance(spec.get("options"), dict):
        spec["options"] = dict((name, _converter_spec(sub)) for name, sub in spec["options"].items())
    return spec


def list_hint(name):
    return ("give %s as a list (%s: [first, second], or -e '{\"%s\": [\"first\", \"second\"]}') or as one string "
            "that is split like a shell would split it (-e '%s=first second')" % (name, name, name, name))


def shell_words(name, value, secret=False):
    """A list given as a string: a YAML/JSON list when written as one, else split like a shell would. A ``secret``
    value (a ``no_log`` option) is never quoted in the error."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    try:
        return shlex.split(text)
    except ValueError as exc:
        shown = "its value (not shown: no_log)" if secret else repr(value)
        raise RoleInputError("%s: cannot split %s like a shell would (%s); %s" % (name, shown, exc, list_hint(name)))


def typed_inputs(options, values, context="role"):
    """Every option of ``options`` (an entry point's ``options`` from argument_specs.yml) typed.

    ``values`` holds what the play gives (templated); options it lacks get their spec default.
    Raises RoleInputError naming each variable that does not convert.
    """
    params = {}
    errors = []
    for name, option in options.items():
        value = values.get(name, option.get("default"))
        if value is None:
            value = option.get("default")
        if value is not None and option.get("type") == "list" and isinstance(value, str):
            try:
                value = shell_words(name, value, secret=bool(option.get("no_log")))
            except RoleInputError as exc:
                errors.append(str(exc))
                continue
        params[name] = value
    spec = dict((name, _converter_spec(option)) for name, option in options.items())
    result = ArgumentSpecValidator(spec).validate(params, validate_role_argument_spec=True)
    # ansible-core quotes the value it could not convert (2.19: "'abc' cannot be converted to an int"): never a
    # no_log option's
    secrets = [str(value) for name, value in params.items()
               if options[name].get("no_log") and value not in (None, "") and not isinstance(value, bool)]
    for message in result.error_messages:
        for secret in secrets:
            message = message.replace(secret, "********")
        hint = [list_hint(name) for name, option in options.items()
                if option.get("type") == "list" and "'%s'" % name in message]
        errors.append(message + ("; " + hint[0] if hint else ""))
    if errors:
        raise RoleInputError("%s: %s" % (context, " ".join(errors)))
    typed = result.validated_parameters
    return dict((name, typed.get(name)) for name in options)
