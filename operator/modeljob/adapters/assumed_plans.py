"""Plans being written, read by the next cycles as if written already.

A cycle that places a job hands the plan's write (and then the pods' binding) to a pool and ends;
the write lands beside the next cycles, as Kueue's scheduler assumes an admission in its cache and
writes it in a goroutine (``Scheduler.admit``), and kube-scheduler assumes a pod on its node while
its binding cycle runs. Until the write is done the job is *assumed*: a cycle reads it as the write
will leave it (its placement, Binding=True), so its nodes are kept for it as for any written
plan (core/cycle_cluster.py, complete) and no other job is placed on them; and the job is not acted
on, since its write is pending (adapters/waiting_writes.py). The pods are still created only after
the plan has landed: a crash in between leaves no pod of a plan that was not written.

What makes this exact, with no moment at which a cycle sees neither the plan nor the assumption:
- the loop reads the pending writes, then the assumptions, then its snapshot of the jobs;
- a write's task drops its assumption only after the reply is in the watched copy (or the write
  failed), and the pool forgets the job as pending only after the task is done;
- an assumption is read only for a job whose write was pending at that first read, and only over
  the version it was decided from: a job changed or deleted since is read as it is (its write,
  conditional on that version, is refused with 409 or 404).
So a cycle sees either the assumed plan, or the written one, or (the write refused or dropped
before it started) no plan, and then the job is planned again.
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
ASSUMED_VERSION_SUFFIX = "+planned"


@dataclass(frozen=True, slots=True)
class AssumedPlan:
    key: Key
    version: str  # the resourceVersion the plan was decided from
    document: dict[str, Any]  # the job as it reads once the plan is written


class AssumedPlans:
    """The plans handed to the placing pool and not yet done, by job uid."""

    def __init__(self) -> None:
        self._plans: dict[str, AssumedPlan] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)

    def assume(self, uid: str, key: Key, document: Document, patch: Mapping[str, object]) -> None:
        """``document``, the version the plan was decided from, read as written with ``patch``."""
        meta = document.get("metadata") or {}
        version = _version(document)
        planned = with_status(document, patch)
        planned["metadata"] = {**meta, "resourceVersion": version + ASSUMED_VERSION_SUFFIX}
        with self._lock:
            self._plans[uid] = AssumedPlan(key=key, version=version, document=planned)

    def drop(self, uid: str) -> None:
        """The write is done (landed and watched, or failed) or will never start."""
        with self._lock:
            self._plans.pop(uid, None)

    def of(self, pending: Set[str]) -> list[AssumedPlan]:
        """The plans whose write was ``pending`` (read before this call); any other was dropped
        unstarted (the replica stopped leading), and is forgotten here."""
        with self._lock:
            for uid in [uid for uid in self._plans if uid not in pending]:
                del self._plans[uid]
            return list(self._plans.values())


def read_as_written(documents: MutableMapping[Key, dict[str, Any]], assumed: list[AssumedPlan]) -> None:
    """Each assumed plan put in ``documents`` (a snapshot of the caller's own, taken after
    ``assumed`` was read) in place of the version it was decided from; a job changed or deleted
    since is left as it is."""
    for plan in assumed:
        current = documents.get(plan.key)
        if current is not None and _version(current) == plan.version:
            documents[plan.key] = plan.document


def _version(document: Document) -> str:
    return str((document.get("metadata") or {}).get("resourceVersion", ""))
