"""Every ORM model, imported in one place so metadata is complete for migrations."""

from __future__ import annotations

from claimready.assets.models import Asset, AssetIdentifier
from claimready.controls.models import (
    ControlException,
    ControlStep,
    ControlTuning,
    EvaluationRun,
)
from claimready.db.base import Base
from claimready.evidence.models import Evidence
from claimready.facts.models import FactFile
from claimready.sources.models import Source
from claimready.tenants.models import Tenant

__all__ = [
    "Asset",
    "AssetIdentifier",
    "Base",
    "ControlException",
    "ControlStep",
    "ControlTuning",
    "EvaluationRun",
    "Evidence",
    "FactFile",
    "Source",
    "Tenant",
]
