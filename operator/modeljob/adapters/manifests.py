"""Manifest files -> validated ModelJob objects, with errors that name the file, document and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modeljob.api.v1alpha1 import KIND, ModelJob, describe_validation_error, parse_model_job


class ManifestError(ValueError):
    """A manifest that cannot be used; the message is one line naming where and what."""


@dataclass(frozen=True, slots=True)
class LoadedJob:
    source: str  # "file.yaml" or "file.yaml#2" for the second document
    job: ModelJob

    @property
    def name(self) -> str:
        return self.job.metadata.name or self.source


def load_model_jobs(path: Path) -> list[LoadedJob]:
    """Every ModelJob document in a YAML file (other kinds are an error, empty documents skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: invalid YAML: {problem}") from None
    if not documents:
        raise ManifestError(f"{path}: no ModelJob documents found")
    jobs = []
    for index, document in enumerate(documents, start=1):
        source = str(path) if len(documents) == 1 else f"{path}#{index}"
        jobs.append(LoadedJob(source=source, job=_parse(document, source)))
    return jobs


def _parse(document: Any, source: str) -> ModelJob:
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: expected a ModelJob mapping, got {type(document).__name__}")
    kind = document.get("kind")
    if kind != KIND:
        raise ManifestError(f"{source}: kind: expected {KIND}, got {kind!r}")
    try:
        return parse_model_job(document)
    except ValidationError as exc:
        name = (
            (document.get("metadata") or {}).get("name")
            if isinstance(document.get("metadata"), dict)
            else None
        )
        label = f"{source} ({name})" if name else source
        raise ManifestError(f"{label}: " + "; ".join(describe_validation_error(exc))) from None
