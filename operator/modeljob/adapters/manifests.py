"""Manifest files -> validated ModelJob objects, with errors that name the file, document and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    jobs: tuple[LoadedJob, ...]
    skipped: tuple[str, ...]  # "file.yaml#2: Service web" for each document of another kind


STDIN = "-"  # the file name that means standard input, as kubectl's `-f -`


def read_manifest(name: str, stdin: TextIO) -> str:
    """The text of a manifest file, or of standard input when the name is "-"."""
    if name == STDIN:
        return stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{name}: cannot read: {exc}") from None


def load_model_jobs(text: str, source: str) -> LoadedManifest:
    """Every ModelJob document in YAML text; documents of other kinds are skipped and named."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{where}: invalid YAML: {problem}") from None
    jobs, skipped, others = [], [], []
    for index, document in enumerate(documents, start=1):
        where = source if len(documents) == 1 else f"{source}#{index}"
        other = _other_kind(document)
        if other:
            skipped.append(f"{where}: {other}")
            others.append(other)
        else:
            jobs.append(LoadedJob(source=where, job=_parse(document, where)))
    if not jobs:
        only = f" (only {', '.join(others)})" if others else ""
        raise ManifestError(f"{source}: no ModelJob documents found{only}")
    return LoadedManifest(jobs=tuple(jobs), skipped=tuple(skipped))


def _other_kind(document: Any) -> str:
    """'Service web' for a document that names a kind other than ModelJob, else ''."""
    if not isinstance(document, dict):
        return ""
    kind = document.get("kind")
    if not isinstance(kind, str) or not kind or kind == KIND:
        return ""  # a ModelJob, or a document too broken to tell: _parse says what is wrong
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{kind} {name}" if name else kind


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
