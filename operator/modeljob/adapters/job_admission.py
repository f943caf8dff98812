"""Admission in the scheduling loop: each new generation of a ModelJob's spec judged before the cycle
(core/spec_admission.py), and what was found written with the job's first step, with its Event.

A job that fits at once is thus planned in the write that admits it; one that waits is written
Queued (or Unschedulable) with its reason in one write. Only the leader's loop runs this, so a
standby writes nothing. Until a write that carries the judgement goes through, the status does not
record the generation and each cycle judges the job again: from one cycle to the next only the
unchanged version of it is recalled (same resourceVersion, same node types and prices it may use),
never a judgement another process or a restart made.

A job whose spec cannot be read is still seen by the cycle, from its metadata and status
(kube_jobs.unread_job_facts): Invalid, so a placement it holds is rolled back and its pods deleted
as any invalid job's are, and its queue is charged for them until then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from modeljob.adapters import kube_jobs
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_view import ClusterView, ParsedJobs
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.job_status import JsonObject, StatusWriter
from modeljob.adapters.metrics import AttemptResult, OperatorMetrics
from modeljob.core.cycle_cluster import SizingCache
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.jobs import JobShape
from modeljob.core.lifecycle import spec_problem
from modeljob.core.node_types import ClusterNodeTypes, NodeTypes, Sizing
from modeljob.core.sizing import Device, Estimate, size_replica
from modeljob.core.spec_admission import Judgement, judge, recorded

logger = logging.getLogger(__name__)

Document = Mapping[str, Any]
SHAPES_REMEMBERED = 10_000  # past this many judged shapes, the cache starts over


@dataclass(frozen=True, slots=True)
class Admitting:
    """The jobs of one snapshot as the cycle is to see them (those judged now, as admitted; those
    whose spec cannot be read, from their status alone), and each judged job's judgement with the
    patch it writes, by uid."""

    jobs: list[JobFacts]
    judged: Mapping[str, tuple[Judgement, JsonObject]]


Judged = tuple[JobFacts | None, tuple[Judgement, JsonObject] | None]


class Admissions:
    """Judges the jobs of each snapshot whose status does not record their generation; sizes them
    on the node types of the current node set, computed once per ``ClusterView.node_set_version``."""

    def __init__(self, view: ClusterView, estimates: SizingCache, *, metrics: OperatorMetrics) -> None:
        self._view = view
        self._estimates = estimates
        self._metrics = metrics
        self._types: tuple[int, ClusterNodeTypes] | None = None
        self._pass_types: ClusterNodeTypes | None = None  # what the snapshot being judged is sized on
        # Judging a shape sizes it once (about a millisecond); a burst of jobs shares a few shapes.
        self._problems: dict[JobShape, str | None] = {}
        # Each version of each job whose spec cannot be read, as the cycle sees it (one snapshot).
        self._unread: dict[tuple[str, str], JobFacts] = {}
        # (uid, generation) whose judgement raised, newest last; bounded like the shapes.
        self._failed: dict[tuple[str, str], None] = {}
        # Each job judged in the last snapshot, by the version of it, with the node types it was
        # judged on (ClusterNodeTypes.types_for; None for a job whose spec cannot be read): until
        # a write records its admission (written beside the next cycles, adapters/
        # waiting_writes.py, minutes behind for a burst of thousands), the same version is judged
        # the same way while they stand, to the same JobFacts object the cycle's caches know it by.
        self._judged: dict[tuple[str, str], tuple[NodeTypes | None, Judged]] = {}
        # id(document) -> the document and its job, for each one judged settled last snapshot.
        self._settled: dict[int, tuple[Document, JobFacts]] = {}
        self._judged_before: dict[tuple[str, str], tuple[NodeTypes | None, Judged]] = {}

    def judge(self, documents: Iterable[Document], parsed: ParsedJobs, *, now: datetime) -> Admitting:
        # A document the last snapshot held, whose status recorded its generation and whose spec
        # was read, is the same job object again: nothing here reads more than the document (the
        # watch replaces a changed one with a new object). Most of a deep queue, every cycle.
        settled, self._settled = self._settled, {}
        # One node set for the whole snapshot: a change while it is judged is seen next cycle.
        self._pass_types = self._node_types()
        slots: list[JobFacts | None] = []  # the documents' jobs, in the documents' order
        rest: list[tuple[int, Document]] = []
        for document in documents:
            found = settled.get(id(document))
            if found is not None and found[0] is document:
                self._settled[id(document)] = found
                slots.append(found[1])
            else:
                rest.append((len(slots), document))
                slots.append(None)
        readable = {job.uid: job for job in parsed.parse(document for _, document in rest)}
        judged: dict[str, tuple[Judgement, JsonObject]] = {}
        unread, self._unread = self._unread, {}
        self._judged_before, self._judged = self._judged, {}
        for index, document in rest:
            meta = document.get("metadata") or {}
            uid = str(meta.get("uid"))
            job = readable.get(uid)
            try:
                facts, judgement = self._judge_one(document, job, parsed.problem(document), unread, now=now)
            except Exception as exc:  # one job's surprise must not stop every job's cycle
                facts, judgement = self._judge_failed(document, job, exc, unread, now=now)
            slots[index] = facts
            if judgement is not None:
                judged[uid] = judgement
        jobs = [job for job in slots if job is not None]
        return Admitting(jobs=jobs, judged=judged)

    def _judge_one(
        self,
        document: Document,
        job: JobFacts | None,
        problem: str | None,
        unread: Mapping[tuple[str, str], JobFacts],
        *,
        now: datetime,
        fresh: bool = False,
    ) -> Judged:
        """One job as the cycle is to see it, and its judgement if it is judged now (``fresh``:
        whatever the status records; ``problem``: what makes it Invalid, if known already)."""
        meta = document.get("metadata") or {}
        previous = kube_jobs.job_phase(document)
        status = document.get("status") or {}
        generation = meta.get("generation")
        done = recorded(
            observed_generation=status.get("observedGeneration"), generation=generation, phase=previous
        )
        # A spec that cannot be read is judged again unless the status says Invalid (or finished):
        # one that was read before (an older operator read more) must not stay planned unread.
        settled = (
            job is not None or previous is JobPhase.INVALID or (previous is not None and previous.finished)
        )
        if done and settled and not fresh:
            if job is None:
                return self._unread_facts(document, unread), None
            self._settled[id(document)] = (document, job)
            return job, None
        if fresh:
            return self._judge_afresh(document, job, problem, previous, unread, now=now)
        # A readable job's judgement reads of the nodes only the types it may use (a change of the
        # node set that leaves them, as kube-controller-manager lifting the not-ready taints of a
        # thousand new nodes many a second, leaves it); an unreadable one's reads none.
        basis = None if job is None else self._judging_types().types_for(job)
        key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
        if (found := self._judged_before.get(key)) is not None and found[0] is basis:
            self._judged[key] = found
            return found[1]
        judged = self._judge_afresh(document, job, problem, previous, unread, now=now)
        self._judged[key] = (basis, judged)
        return judged

    def _judge_afresh(
        self,
        document: Document,
        job: JobFacts | None,
        problem: str | None,
        previous: JobPhase | None,
        unread: Mapping[tuple[str, str], JobFacts],
        *,
        now: datetime,
    ) -> Judged:
        status = document.get("status") or {}
        generation = (document.get("metadata") or {}).get("generation")
        judgement = judge(
            job,
            problem=problem,
            previous=previous,
            generation=generation,
            size=self._size,
            check=self._check,
        )
        facts = judgement.job
        if facts is None:  # seen as its status says, as admitted: Invalid, its pods rolled back
            unread_facts = self._unread_facts(document, unread)
            facts = replace(unread_facts, observed_generation=unread_facts.generation, phase=judgement.phase)
        return facts, (judgement, judgement.patch(status, now=now))

    def _judge_failed(
        self,
        document: Document,
        job: JobFacts | None,
        exc: Exception,
        unread: Mapping[tuple[str, str], JobFacts],
        *,
        now: datetime,
    ) -> Judged:
        """Judging the job raised (a bug of ours, logged with its traceback) and the other jobs go
        on. A job that holds a placement keeps it, seen as its status records it (its new
        generation not admitted, as if not yet judged): our bug must not delete a running
        workload's pods; it is judged again each cycle. Any other job is Invalid, saying so; if
        even that fails, it sits this cycle out."""
        meta = document.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        key = (str(meta.get("uid")), str(meta.get("generation")))
        if key not in self._failed:  # once per generation: it fails alike every cycle
            logger.exception("%s: judging the spec failed", where)
            if len(self._failed) > SHAPES_REMEMBERED:
                self._failed.clear()
            self._failed[key] = None
        self._metrics.record_attempt(str(meta.get("namespace", "")), AttemptResult.ERROR)
        if job is not None and job.placement:
            return job, None  # its status does not record this generation: not admitted
        try:
            problem = f"internal error judging the spec: {exc}"
            return self._judge_one(document, job, problem, unread, now=now, fresh=True)
        except Exception:
            logger.exception("%s: left out of this cycle", where)
            return None, None

    def _unread_facts(self, document: Document, unread: Mapping[tuple[str, str], JobFacts]) -> JobFacts:
        """The job from its metadata and status alone, built once per version of it."""
        meta = document.get("metadata") or {}
        key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
        facts = unread.get(key) or kube_jobs.unread_job_facts(document)
        self._unread[key] = facts
        return facts

    def _size(self, job: JobFacts) -> Sizing:
        return self._judging_types().size(job, size=self._estimate)

    def _judging_types(self) -> ClusterNodeTypes:
        """The node types the snapshot under way is judged on (``judge`` sets them first)."""
        assert self._pass_types is not None, "a job judged outside judge()"
        return self._pass_types

    def _node_types(self) -> ClusterNodeTypes:
        """The node types of the node set as it is, built once per version of it."""
        version = self._view.node_set_version  # read before the nodes: a change meanwhile rebuilds
        if self._types is None or self._types[0] != version:
            previous = self._types[1] if self._types is not None else None
            self._types = (version, ClusterNodeTypes(self._view.nodes.values(), previous=previous))
        return self._types[1]

    def _check(self, shape: JobShape) -> str | None:
        if shape not in self._problems:
            if len(self._problems) > SHAPES_REMEMBERED:
                self._problems.clear()
            self._problems[shape] = spec_problem(shape)
        return self._problems[shape]

    def _estimate(self, job: JobFacts, device: Device) -> Estimate:
        key = (job.shape, device.memory_bytes, device.gpus_per_node)
        if key not in self._estimates:
            self._estimates[key] = size_replica(job.shape, device)
        return self._estimates[key]


def with_status(document: Document, patch: Mapping[str, object]) -> dict[str, Any]:
    """``document`` as it reads once ``patch`` (a merge patch of its status) is written."""
    status = {**(document.get("status") or {}), **patch}
    return {**document, "status": {key: value for key, value in status.items() if value is not None}}


class AdmittingWriter(StatusWriter):
    """The loop's status writes; a job judged this cycle has its admission carried by the first
    write of its step (or, if its step writes nothing, written alone after it), then its Event."""

    def __init__(
        self, gateway: ClusterGateway, view: ClusterView, *, events: EventRecorder, metrics: OperatorMetrics
    ) -> None:
        super().__init__(gateway, view)
        self._events = events
        self._metrics = metrics
        self._carried: dict[str, tuple[Judgement, JsonObject]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def carrying(self, document: Document, judged: tuple[Judgement, JsonObject] | None) -> Iterator[Document]:
        """Around acting on a job's step: ``judged`` (its admission, if judged this cycle) is
        carried by the step's first write, or written alone once the step wrote nothing. Yields
        the job as each write of the step is to build on (admitted). If the step fails, the
        admission is dropped unwritten: the next cycle judges the job again."""
        if judged is None:
            yield document
            return
        uid = str((document.get("metadata") or {}).get("uid"))
        admitted = with_status(document, judged[1])
        with self._lock:
            self._carried[uid] = judged
        try:
            yield admitted
            self._write_carried(admitted)
        finally:
            with self._lock:
                self._carried.pop(uid, None)

    def patch(self, job: Mapping[str, Any], status: Mapping[str, object]) -> JsonObject:
        # The carried patch is taken before the write: one attempt carries it, and a 409 leaves
        # the generation unrecorded for the next cycle (patch_through retries without it).
        carried = self._take(job)
        if carried is None:
            return super().patch(job, status)
        reply = super().patch(job, {**carried[1], **status})
        self._admitted(job, *carried)
        return reply

    def _write_carried(self, job: Mapping[str, Any]) -> None:
        """After the step: the admission alone, if no write of the step carried it."""
        carried = self._take(job)
        if carried is not None:
            super().patch(job, carried[1])
            self._admitted(job, *carried)

    def _take(self, job: Mapping[str, Any]) -> tuple[Judgement, JsonObject] | None:
        with self._lock:
            return self._carried.pop(str((job.get("metadata") or {}).get("uid")), None)

    def _admitted(self, job: Mapping[str, Any], judgement: Judgement, patch: JsonObject) -> None:
        best = judgement.best
        if "estimate" in patch and best is not None:
            self._metrics.record_estimate(best.estimate)
        reason, message, warning = judgement.event
        self._events.record(job, reason, message, warning=warning)
