"""An action plugin of the collection, made as Ansible makes it for a task, without a play: its task's arguments,
a connection that is never used, and what it displays."""

from __future__ import annotations

import importlib
import types

PACKAGE = "ansible_collections.aiinfra.gpu_cluster.plugins.action"


class Shown:
    """Stands in for an action plugin's Display: keeps what it shows and warns."""

    def __init__(self):
        self.lines, self.warnings = [], []

    def display(self, msg, *args, **kwargs):
        self.lines.append(msg)

    def warning(self, msg, *args, **kwargs):
        self.warnings.append(msg)

    def vvv(self, msg, *args, **kwargs):
        pass

    v = vv = vvvv = debug = vvv


def make_action(name, args, monkeypatch, check_mode=False):
    """(ActionModule of plugins/action/NAME.py for a task with ``args``, Shown, the plugin's module)."""
    plugin = importlib.import_module("%s.%s" % (PACKAGE, name))
    shown = Shown()
    monkeypatch.setattr(plugin, "display", shown)
    task = types.SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, no_log=False,
                                 action="aiinfra.gpu_cluster." + name, delegate_to=None)
    connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir="/nonexistent"))
    action = plugin.ActionModule(task, connection, None, None, None, None)
    action._load_name = "aiinfra.gpu_cluster." + name  # pylint: disable=protected-access
    return action, shown, plugin
