"""Every node scorer, found in ``core/scoring/scorers/``: a new scorer is one new module there.

Each module of that package defines ``SCORER`` (a ``plugin.Scorer``); the registry lists them by
``position``. Settings, the chart's values, ``modeljob simulate --weights`` and the reasons all
take the scorer names from here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from modeljob.core.scoring import scorers as scorer_package
from modeljob.core.scoring.plugin import Scorer


@functools.cache
def registered_scorers() -> tuple[Scorer, ...]:
    """Every scorer, by position; a module without ``SCORER`` or a repeated name or position fails."""
    found: list[Scorer] = []
    for info in pkgutil.iter_modules(scorer_package.__path__, f"{scorer_package.__name__}."):
        module = importlib.import_module(info.name)
        scorer: Scorer | None = getattr(module, "SCORER", None)
        if scorer is None:
            raise ImportError(f"{info.name} defines no SCORER; every module of the scorers package is one")
        found.append(scorer)
    ordered = tuple(sorted(found, key=lambda s: s.position))
    for label, values in (("name", [s.name for s in ordered]), ("position", [s.position for s in ordered])):
        if len(set(values)) != len(values):
            raise ImportError(f"two scorers share a {label}: {values}")
    return ordered


def setting_name(scorer: Scorer) -> str:
    """The scorer's name as a settings field and keyword: ``gpu-fragmentation`` -> ``gpu_fragmentation``."""
    return scorer.name.replace("-", "_")
