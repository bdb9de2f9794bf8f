# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each cloud's options, declared once (``<cloud>/options.py``, next to the provider that reads them).

From the declarations come: the modules' argument specs (:func:`argument_spec`), the check that refuses an option
of another cloud (:func:`foreign_options`, run by the modules as part of argument validation), what a provider
is handed (:func:`cloud_options`), the inventory plugin's options, and the doc fragments
(``plugins/doc_fragments/<cloud>.py`` and ``cloud_shared.py``, written by :func:`render_fragments`; a unit test fails
when the files and the declarations drift apart).

An option's *scope* says which modules take it: ``cluster`` (every cloud module and the inventory plugin: how to
reach the cloud), ``instance`` (the instance module), ``firewall`` (the firewall module); ``inventory`` adds the
inventory plugin to an ``instance`` option. An option several clouds declare (``region``, ``placements``...) is one
module option; each cloud's declaration says what it means there, and their types must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPES = ("cluster", "instance", "firewall")


@dataclass(frozen=True)
class Option:
    """One option of one cloud."""

    name: str
    description: tuple
    type: str = "str"
    scope: str = "cluster"
    elements: str = None
    choices: tuple = None
    default: object = None
    no_log: bool = None
    required: bool = False
    suboptions: tuple = ()
    inventory: bool = False  # an instance option the inventory plugin reads too (its own doc declares it)

    def spec(self):
        """The argument-spec entry (shared by every cloud that declares the option)."""
        out = {"type": self.type}
        for key in ("elements", "default", "no_log"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.required:
            out["required"] = True
        if self.suboptions:
            out["options"] = dict((sub.name, sub.spec()) for sub in self.suboptions)
        return out

    def shape(self):
        """What must agree between clouds declaring the same option: the spec without the suboptions' texts."""
        out = self.spec()
        out.pop("options", None)
        return out


@dataclass(frozen=True)
class Cloud:
    """A cloud's declarations: its options and what its modules need installed."""

    name: str
    options: tuple
    requirements: tuple = ()
    names: tuple = field(init=False, default=())

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(o.name for o in self.options))

    def scoped(self, *scopes):
        return [o for o in self.options if o.scope in scopes]


def _merged(clouds, scopes):
    """name -> [(cloud, Option)] over ``clouds`` for options of ``scopes``; types must agree."""
    merged = {}
    for cloud in clouds:
        for option in cloud.scoped(*scopes):
            merged.setdefault(option.name, []).append((cloud.name, option))
    for name, entries in merged.items():
        shapes = set(repr(sorted(o.shape().items())) for _c, o in entries)
        if len(shapes) > 1:
            raise ValueError("option %s is declared with different types by %s"
                             % (name, ", ".join(c for c, _o in entries)))
    return merged


def argument_spec(clouds, scopes):
    """The union argument spec of ``clouds``' options of ``scopes`` (suboptions merged)."""
    spec = {}
    for name, entries in _merged(clouds, scopes).items():
        entry = entries[0][1].spec()
        if any(o.suboptions for _c, o in entries):
            subs = {}
            for _c, option in entries:
                for sub in option.suboptions:
                    subs.setdefault(sub.name, sub.spec())
            entry["options"] = subs
        spec[name] = entry
    return spec


def owners(clouds, scopes=SCOPES):
    """option name -> the clouds that declare it."""
    return dict((name, [c for c, _o in entries]) for name, entries in _merged(clouds, scopes).items())


def is_set(value, default=None):
    """An option counts as set when it is not empty and not its argument spec's default."""
    return value not in (None, [], {}, False) and value != default


def foreign_options(cloud, params, clouds, spec):
    """The message refusing options of another cloud set in ``params`` for ``cloud``, or ``None``.

    ``spec``: the module's argument spec (an option left at its default there is not set).
    """
    by_name = dict((c.name, c) for c in clouds)
    mine = set(by_name[cloud].names) if cloud in by_name else set()
    foreign = {}
    for name, declared_by in sorted(owners(clouds).items()):
        if name in mine or name not in spec or not is_set(params.get(name), spec[name].get("default")):
            continue
        foreign[name] = declared_by
    if not foreign:
        return None
    return ("option(s) %s do not apply to cloud %r: %s. Remove them, or set cloud to the cloud they belong to"
            % (", ".join(sorted(foreign)), cloud,
               "; ".join("%s belongs to cloud %s" % (name, " and ".join(by)) for name, by in sorted(foreign.items()))))


def cloud_options(cloud, params, shared=("image",)):
    """What a provider of ``cloud`` is handed: its declared options (and the modules' ``shared`` ones it reads)."""
    return dict((name, params.get(name)) for name in tuple(cloud.names) + tuple(shared))


# -- documentation ---------------------------------------------------------------------------------------------------

def _doc(option, lines):
    out = {"description": list(lines), "type": option.type}
    if option.elements:
        out["elements"] = option.elements
    if option.choices is not None:
        out["choices"] = list(option.choices)
    if option.default is not None:
        out["default"] = option.default
    if option.required:
        out["required"] = True
    return out


def _sub_doc(entries):
    """Suboptions of an option several clouds declare: each suboption once, its clouds named when not all."""
    clouds = [c for c, _o in entries]
    subs = {}
    for cloud, option in entries:
        for sub in option.suboptions:
            subs.setdefault(sub.name, []).append((cloud, sub))
    out = {}
    for name, sub_entries in subs.items():
        out[name] = _doc(sub_entries[0][1], _lines(sub_entries, len(clouds) > 1))
    return out


def _lines(entries, name_clouds=True):
    """The description of an option declared by the clouds of ``entries``: each cloud's lines, its first line
    starting with the cloud (when more than one declares it, or ``name_clouds``), then which clouds take it."""
    lines = []
    several = len(entries) > 1
    for cloud, option in entries:
        text = list(option.description)
        if several:
            first = text[0]
            if first[:1].isupper() and first[1:2].islower():  # "The AWS region" -> "the AWS region"; not "C(...)"
                first = first[0].lower() + first[1:]
            text[0] = "On O(cloud=%s), %s" % (cloud, first)
        lines.extend(text)
    if name_clouds:
        if several:
            lines.append("For %s." % ", ".join("O(cloud=%s)" % c for c, _o in entries))
        else:
            lines.append("Only for O(cloud=%s)." % entries[0][0])
    return lines


FRAGMENT_CLASS = {"cluster": "DOCUMENTATION", "instance": "INSTANCE", "firewall": "FIREWALL"}


def fragments(clouds):
    """{fragment file stem: {class attribute: {"options": ..., "requirements": ...}}}: one fragment per cloud with
    the options only it declares, and ``cloud_shared`` with those several declare."""
    out = {}
    for scope in SCOPES:
        for name, entries in sorted(_merged(clouds, (scope,)).items()):
            stem = entries[0][0] if len(entries) == 1 else "cloud_shared"
            option = entries[0][1]
            doc = _doc(option, _lines(entries))
            if any(o.suboptions for _c, o in entries):
                doc["suboptions"] = _sub_doc(entries)
            section = out.setdefault(stem, {}).setdefault(FRAGMENT_CLASS[scope], {"options": {}})
            section["options"][name] = doc
    for cloud in clouds:
        if cloud.requirements:
            section = out.setdefault(cloud.name, {}).setdefault("DOCUMENTATION", {"options": {}})
            section["requirements"] = list(cloud.requirements)
    return out


HEADER = '''# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/_cloud/<cloud>/options.py by tests/gen_cloud_docs.py --write.
# Do not edit: edit the declarations (tests/unit/plugins/module_utils/_cloud/test_cloud_options.py checks they agree).

from __future__ import annotations


class ModuleDocFragment(object):
'''


def render_fragments(clouds, dump):
    """{file stem: Python source} of the doc fragments; ``dump``: a YAML dumper (text -> str)."""
    sources = {}
    for stem, sections in sorted(fragments(clouds).items()):
        parts = [HEADER]
        for attr in ("DOCUMENTATION", "INSTANCE", "FIREWALL"):
            if attr not in sections:
                continue
            body = sections[attr]
            parts.append('    %s = r"""\n%s"""\n' % (attr, dump(body)))
        sources[stem] = "\n".join(parts)
    return sources
