"""What the registered connectors read and emit, for users and for the documentation."""

from __future__ import annotations

from typing import Any

import pluggy

from claimready.connectors.registry import all_connectors


def catalog(manager: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Every connector with its formats, signals, blind spots and live collection."""
    return [
        {
            "kind": c.kind,
            "title": c.title,
            "version": c.version,
            "live": c.live,
            "formats": list(c.formats),
            "signals": [
                {"name": s.name, "type": s.type, "description": s.description} for s in c.signals
            ],
            "blind_spots": list(c.blind_spots),
        }
        for c in sorted(all_connectors(manager).values(), key=lambda c: c.kind)
    ]


def markdown(manager: pluggy.PluginManager | None = None) -> str:
    """The catalog as Markdown tables: connectors, then signals with who emits them."""
    entries = catalog(manager)
    lines = ["| kind | tool | reads | live |", "| --- | --- | --- | --- |"]
    for e in entries:
        live = "yes" if e["live"] else "-"
        lines.append(f"| `{e['kind']}` | {e['title']} | {'; '.join(e['formats'])} | {live} |")
    emitters: dict[str, tuple[str, str, list[str]]] = {}
    for e in entries:
        for s in e["signals"]:
            known = emitters.setdefault(s["name"], (s["type"], s["description"], []))
            known[2].append(e["kind"])
    lines += ["", "| signal | type | meaning | from |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{name}` | {kind} | {meaning} | {', '.join(f'`{k}`' for k in kinds)} |"
        for name, (kind, meaning, kinds) in sorted(emitters.items())
    ]
    return "\n".join(lines) + "\n"
