"""Connector discovery through pluggy: built-in connectors register exactly as plugins do.

A third-party package exposes a module with a ``claimready_connectors`` hook
implementation under the ``claimready`` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from importlib import metadata

import pluggy

from claimready.connectors.base import Connector
from claimready.errors import UsageError

PROJECT = "claimready"
log = logging.getLogger(__name__)
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PACKAGE = "claimready.connectors.builtin"


def default_plugins() -> tuple[str, ...]:
    """Module names of the built-in connectors: every module in the builtin package."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    names = (info.name for info in pkgutil.iter_modules(package.__path__))
    return tuple(f"{BUILTIN_PACKAGE}.{name}" for name in sorted(names))


class ConnectorSpec:
    """Hook specifications for connector plugins."""

    @hookspec
    def claimready_connectors(self) -> list[Connector]:  # type: ignore[empty-body]
        """Return the connectors this plugin provides."""


def plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the built-in plugins and, optionally, installed ones."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(ConnectorSpec)
    for name in default_plugins():
        manager.register(importlib.import_module(name), name=name)
    if load_entry_points:
        _load_entry_points(manager)
    return manager


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    """Register installed plugins; one that fails to load is reported and skipped."""
    for entry in metadata.entry_points(group=PROJECT):
        if manager.get_plugin(entry.name) is not None:
            continue
        try:
            manager.register(entry.load(), name=entry.name)
        except Exception as exc:  # a broken third-party plugin must not disable the rest
            log.warning("connector plugin %s (%s) failed to load: %s", entry.name, entry.value, exc)


@functools.cache
def default_manager() -> pluggy.PluginManager:
    """The process's plugin manager (built-in and installed plugins), built once."""
    return plugin_manager()


def all_connectors(manager: pluggy.PluginManager | None = None) -> dict[str, Connector]:
    """Every registered connector by kind."""
    found: dict[str, Connector] = {}
    for batch in (manager or default_manager()).hook.claimready_connectors():
        for connector in batch:
            found.setdefault(connector.kind, connector)
    return found


def get_connector(kind: str, manager: pluggy.PluginManager | None = None) -> Connector:
    """The connector for ``kind``; UsageError listing the known kinds otherwise."""
    connectors = all_connectors(manager)
    if kind not in connectors:
        known = ", ".join(sorted(connectors))
        raise UsageError(f"unknown source kind {kind!r} (known: {known})")
    return connectors[kind]


def detect_connector(
    *, name: str, head: bytes, manager: pluggy.PluginManager | None = None
) -> Connector:
    """The one connector that recognizes the file; UsageError when none or several do."""
    matches = [c for c in all_connectors(manager).values() if c.detect(name=name, head=head)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"{name}: cannot tell which tool produced this file; pass --source KIND")
    kinds = ", ".join(sorted(c.kind for c in matches))
    raise UsageError(f"{name}: the format is ambiguous ({kinds}); pass --source KIND")
