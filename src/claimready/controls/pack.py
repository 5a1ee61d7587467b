"""Control packs: YAML files of controls, validated by one schema on load.

A pack names its controls; each control has a scope (asset kinds, optional
tags), a predicate in the language of :mod:`claimready.controls.expr`, a
threshold, a freshness window, an evaluation step, a severity, framework
mappings and the responsible functions. docs/controls.md documents every field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from claimready.controls.expr import Predicate, parse
from claimready.errors import InputError
from claimready.timeutil import parse_duration

BASELINE_PACK = "insurer-baseline"
STEPS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
SEVERITIES = ("low", "medium", "high", "critical")
FUNCTIONS = (
    "identify",
    "protect",
    "detect",
    "respond",
    "recover",
    "preserve-evidence",
    "patch",
    "backup",
    "govern",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Strict):
    """Which assets a control applies to: kinds, and optionally tags (``asset.tag`` facts)."""

    kinds: tuple[str, ...] = Field(min_length=1)
    tags: tuple[str, ...] = ()


class Threshold(_Strict):
    """When the control passes: a share of passing assets, per kind if given, or a count."""

    coverage: float | None = Field(default=None, ge=0.0, le=1.0)
    kinds: dict[str, float] = Field(default_factory=dict)
    max_failing: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_form(self) -> Threshold:
        if (self.coverage is None) == (self.max_failing is None):
            raise ValueError("give exactly one of coverage or max_failing")
        if self.kinds and self.coverage is None:
            raise ValueError("kinds refines a coverage threshold")
        for kind, share in self.kinds.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"kinds.{kind} must be between 0 and 1")
        return self


class ControlSpec(_Strict):
    """One control of a pack, exactly as written in YAML (``freshness`` as ``26h``, ``92d``)."""

    id: str
    title: str = Field(min_length=1)
    objective: str = Field(min_length=1)
    scope: Scope
    signals: tuple[str, ...] = Field(min_length=1)
    predicate: str = Field(min_length=1)
    threshold: Threshold
    freshness: str
    #: Signals that report events, each fresh for longer than the control's freshness:
    #: the last single-factor sign-in is reported while the sign-in logs hold it, yet
    #: the predicate asks about the last 30 days.
    signal_freshness: dict[str, str] = Field(default_factory=dict)
    step: Literal["hour", "day"] = "day"
    severity: Literal["low", "medium", "high", "critical"]
    frameworks: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    responsible: tuple[str, ...] = Field(min_length=1)
    sources: tuple[str, ...] = ()
    retire_after: str = "30d"

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError("must be 3-64 lowercase letters, digits or hyphens")
        return value

    @field_validator("freshness", "retire_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("signal_freshness")
    @classmethod
    def _own_signals(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        unknown = sorted(set(value) - set(info.data.get("signals", ())))
        if unknown:
            raise ValueError(f"names signal(s) {unknown} not in signals")
        for duration in value.values():
            parse_duration(duration)
        return value

    @field_validator("responsible")
    @classmethod
    def _functions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(FUNCTIONS))
        if unknown:
            raise ValueError(f"unknown function(s) {unknown}; known: {', '.join(FUNCTIONS)}")
        return value

    @property
    def freshness_delta(self) -> timedelta:
        """The freshness window as a timedelta."""
        return parse_duration(self.freshness)

    def freshness_of(self, signal: str) -> timedelta:
        """How long a fact of ``signal`` stays fresh for this control."""
        own = self.signal_freshness.get(signal)
        return self.freshness_delta if own is None else parse_duration(own)

    def longest_freshness(self) -> timedelta:
        """The longest freshness of any signal the control reads."""
        return max(self.freshness_of(signal) for signal in self.signals)

    @property
    def retire_delta(self) -> timedelta:
        """How long after its last observation an asset stays in scope."""
        return parse_duration(self.retire_after)

    @property
    def step_delta(self) -> timedelta:
        """The evaluation step as a timedelta."""
        return STEPS[self.step]


class PackSpec(_Strict):
    """A control pack file."""

    pack: str
    title: str
    version: str
    controls: tuple[ControlSpec, ...] = Field(min_length=1)


class Control(BaseModel):
    """A control ready to evaluate: the spec plus its parsed predicate."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: ControlSpec
    predicate: Predicate
    pack: str

    @property
    def id(self) -> str:
        """The control id."""
        return self.spec.id


class Pack(BaseModel):
    """A loaded and checked control pack."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    title: str
    version: str
    path: str
    controls: dict[str, Control]


def _location(error: Mapping[str, Any], document: Any) -> tuple[str | None, str]:
    loc = list(error["loc"])
    control: str | None = None
    if len(loc) >= 2 and loc[0] == "controls" and isinstance(loc[1], int):
        try:
            control = str(document["controls"][loc[1]].get("id", f"#{loc[1]}"))
        except (KeyError, IndexError, TypeError, AttributeError):
            control = f"#{loc[1]}"
        loc = loc[2:]
    return control, ".".join(str(p) for p in loc) or "(top level)"


def _schema_error(exc: ValidationError, *, where: str, document: Any) -> InputError:
    first = exc.errors()[0]
    control, field = _location(first, document)
    record = f"control {control}" if control else None
    return InputError(first["msg"], file=where, record=record, field=field)


def build_control(spec: ControlSpec, *, types: Mapping[str, str], where: str, pack: str) -> Control:
    """Parse the control's predicate and check its signals; errors name file and control."""
    label = f"{where}: control {spec.id}: field 'predicate'"
    unknown = [s for s in spec.signals if s not in types]
    if unknown:
        raise InputError(
            f"unknown signal(s) {unknown}", file=where, record=f"control {spec.id}", field="signals"
        )
    predicate = parse(spec.predicate, types=types, where=label)
    missing = sorted(set(predicate.signals) - set(spec.signals))
    if missing:
        raise InputError(
            f"the predicate reads {missing}, which 'signals' does not list",
            file=where,
            record=f"control {spec.id}",
            field="signals",
        )
    return Control(spec=spec, predicate=predicate, pack=pack)


#: libyaml's safe loader where PyYAML has it: the baseline pack parses in a tenth of the time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_pack_text(text: str, *, where: str, types: Mapping[str, str]) -> Pack:
    """Load a pack from YAML text; ``where`` names it in errors."""
    try:
        document = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {' '.join(str(exc).split())}", file=where) from exc
    except ValueError as exc:  # an impossible date, which PyYAML raises as ValueError
        raise InputError(f"unreadable value: {exc}", file=where) from exc
    try:
        spec = PackSpec.model_validate(document)
    except ValidationError as exc:
        raise _schema_error(exc, where=where, document=document) from exc
    controls: dict[str, Control] = {}
    for item in spec.controls:
        if item.id in controls:
            raise InputError("duplicate control id", file=where, record=f"control {item.id}")
        controls[item.id] = build_control(item, types=types, where=where, pack=spec.pack)
    return Pack(
        name=spec.pack, title=spec.title, version=spec.version, path=where, controls=controls
    )


def load_pack(path: Path, *, types: Mapping[str, str] | None = None) -> Pack:
    """Load a pack file, checking every control against the known signals."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc
    return load_pack_text(text, where=str(path), types=types or signal_types())


def signal_types() -> dict[str, str]:
    """Every signal any registered connector declares, with its type."""
    from claimready.connectors.registry import all_connectors

    found: dict[str, str] = {}
    for connector in all_connectors().values():
        for spec in connector.signals:
            found.setdefault(spec.name, spec.type)
    return found


@cache
def baseline() -> Pack:
    """The built-in insurer baseline pack."""
    source = resources.files("claimready.controls") / "packs" / "baseline.yaml"
    return load_pack_text(
        source.read_text(encoding="utf-8"), where="baseline.yaml", types=signal_types()
    )
