"""Framework catalogs: one YAML file per framework, validated by one schema.

Each catalog lists the identifiers of one framework (NIST CSF 2.0, NIST SP
800-53 rev5, CIS Controls v8.1, ISO/IEC 27001:2022 Annex A, SOC 2, Marsh's
12 key controls) with a title, and where we carry it, the item's own ``text``
(a CSF outcome statement, for instance). The catalog's ``text`` says what the
wording is: the framework's own titles and full text (``full``), the
framework's own titles (``titles``), identifiers with labels
(``identifiers``), or our own paraphrases (``paraphrase``, where the licence
forbids the text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from claimready.errors import InputError, NotFoundError

FRAMEWORKS = ("nist-csf-2.0", "nist-800-53-r5", "cis-v8.1", "iso-27001-2022", "soc2", "marsh-12")


class CatalogItem(BaseModel):
    """One identifier of a framework."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    kind: str | None = None
    oscal_id: str | None = None
    text: str | None = Field(default=None, min_length=1)


class Catalog(BaseModel):
    """A framework catalog file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str
    title: str
    version: str
    source: str
    licence: str
    text: Literal["full", "titles", "identifiers", "paraphrase"]
    items: tuple[CatalogItem, ...] = Field(min_length=1)

    def ids(self) -> frozenset[str]:
        """Every identifier in the catalog."""
        return frozenset(i.id for i in self.items)

    def get(self, item_id: str) -> CatalogItem | None:
        """The item with ``item_id``, or None."""
        return next((i for i in self.items if i.id == item_id), None)


def parse_catalog(document: Any, *, where: str) -> Catalog:
    """Validate one catalog document; InputError naming the file and field."""
    try:
        catalog = Catalog.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(first["msg"], file=where, field=field) from exc
    seen: set[str] = set()
    for item in catalog.items:
        if item.id in seen:
            raise InputError("duplicate identifier", file=where, record=item.id)
        seen.add(item.id)
    return catalog


@cache
def load_catalog(framework: str) -> Catalog:
    """The packaged catalog of ``framework``."""
    if framework not in FRAMEWORKS:
        raise NotFoundError(f"no framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
    name = f"{framework}.yaml"
    text = (resources.files("claimready.frameworks") / "data" / name).read_text(encoding="utf-8")
    return parse_catalog(yaml.safe_load(text), where=name)


def unknown_mappings(mappings: dict[str, tuple[str, ...]]) -> list[str]:
    """``framework:id`` for every mapped identifier its catalog does not contain."""
    missing: list[str] = []
    for framework, ids in sorted(mappings.items()):
        if framework not in FRAMEWORKS:
            missing.append(f"{framework}:*")
            continue
        known = load_catalog(framework).ids()
        missing.extend(f"{framework}:{i}" for i in ids if i not in known)
    return missing


def mapped_items(mappings: Mapping[str, Sequence[str]]) -> list[dict[str, str | None]]:
    """Each mapped identifier with its catalog's title and text, in mapping order.

    ``title`` and ``text`` are None where the catalog lacks them (an unknown
    framework or identifier, or a catalog without full text).
    """
    rows: list[dict[str, str | None]] = []
    for framework, ids in mappings.items():
        catalog = load_catalog(framework) if framework in FRAMEWORKS else None
        for item_id in ids:
            item = catalog.get(item_id) if catalog is not None else None
            rows.append(
                {
                    "framework": framework,
                    "id": item_id,
                    "title": item.title if item is not None else None,
                    "text": item.text if item is not None else None,
                }
            )
    return rows
