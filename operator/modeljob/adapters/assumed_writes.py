"""Decisions being written, read by the next cycles as if written already.

A cycle that places a job hands the plan's write (and then the pods' binding) to a pool and ends;
the write lands beside the next cycles, as Kueue's scheduler assumes an admission in its cache and
writes it in a goroutine (``Scheduler.admit``), and kube-scheduler assumes a pod on its node while
its binding cycle runs. Until the write is done the job is *assumed*: a cycle reads it as the write
will leave it (its placement, Binding=True), so its nodes are kept for it as for any written
plan (core/cycle_cluster.py, complete) and no other job is placed on them; and the job is not acted
on, since its write is pending (adapters/waiting_writes.py). The pods are still created only after
the plan has landed: a crash in between leaves no pod of a plan that was not written.

A running job's new phase (Scheduled, Running: the job holds what it held) is written the same
way: the next cycles read the job in its new phase while the write lands, and act on it again only
once it has (adapters/handed_writes.py).

What makes this exact, with no moment at which a cycle sees neither the write nor the assumption:
- the loop reads the pending writes, then the assumptions, then its snapshot of the jobs;
- a write's task drops its assumption only after the reply is in the watched copy (or the write
  failed), and the pool forgets the job as pending only after the task is done;
- an assumption is read only for a job whose write was pending at that first read, and only over
  the version it was decided from: a job changed or deleted since is read as it is (its write,
  conditional on that version, is refused with 409 or 404).
So a cycle sees either the assumed write, or the written one, or (the write refused or dropped
before it started) the job as it was, and then it decides for the job again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping, Set
from dataclasses import dataclass
from typing import Any

from modeljob.adapters.cluster_view import Key
from modeljob.adapters.job_admission import with_status

Document = Mapping[str, Any]

# Marks the resourceVersion of a job read as assumed: never a version the API server gives, so
# the parsed-jobs cache keeps it apart from the version it was decided from, and a write built on
# it by mistake would be refused.
ASSUMED_VERSION_SUFFIX = "+assumed"


@dataclass(frozen=True, slots=True)
class AssumedWrite:
    key: Key
    version: str  # the resourceVersion the write was decided from
    document: dict[str, Any]  # the job as it reads once the write has landed


class AssumedWrites:
    """The writes handed to a pool (a plan, a phase) and not yet done, by job uid; one per job, as
    a pool takes one write per job at a time."""

    def __init__(self) -> None:
        self._writes: dict[str, AssumedWrite] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._writes)

    def assume(self, uid: str, key: Key, document: Document, patch: Mapping[str, object]) -> None:
        """``document``, the version the write was decided from, read as written with ``patch``."""
        meta = document.get("metadata") or {}
        version = _version(document)
        written = with_status(document, patch)
        written["metadata"] = {**meta, "resourceVersion": version + ASSUMED_VERSION_SUFFIX}
        with self._lock:
            self._writes[uid] = AssumedWrite(key=key, version=version, document=written)

    def drop(self, uid: str) -> None:
        """The write is done (landed and watched, or failed) or will never start."""
        with self._lock:
            self._writes.pop(uid, None)

    def of(self, pending: Set[str]) -> list[AssumedWrite]:
        """The writes that were ``pending`` (read before this call); any other was dropped
        unstarted (the replica stopped leading), and is forgotten here."""
        with self._lock:
            for uid in [uid for uid in self._writes if uid not in pending]:
                del self._writes[uid]
            return list(self._writes.values())


def read_as_written(documents: MutableMapping[Key, dict[str, Any]], assumed: list[AssumedWrite]) -> None:
    """Each assumed write put in ``documents`` (a snapshot of the caller's own, taken after
    ``assumed`` was read) in place of the version it was decided from; a job changed or deleted
    since is left as it is."""
    for write in assumed:
        current = documents.get(write.key)
        if current is not None and _version(current) == write.version:
            documents[write.key] = write.document


def _version(document: Document) -> str:
    return str((document.get("metadata") or {}).get("resourceVersion", ""))
