"""Preemption in the scheduling cycle: running jobs as candidates, victims chosen by the core
(core/preemption.py) in the cycle's own ledger, evicted whole through ``steps.evict``.

Everything is derived from status, never remembered: a job's run started when its Scheduled
condition last became True, and what its earlier runs kept (up to their last checkpoints) is
status.checkpointedSeconds; who preempted whom is each job's status.preemptedBy (the chain
rule) and status.preemptions (how often); a preemptor's status.preempting and
status.nominatedNodes are its written plan. A preemptor whose plan lists victims not yet
evicted (the operator stopped midway) evicts them now; while its victims' pods are going it
waits and its nominated nodes are kept from every other job; once they are gone it is planned
before anyone else, and that step ends the plan.

A plan's lifetime is exact (core/status.py ``plan_over``): written by the Preempt step that
chooses its victims, kept only by the Preempt that carries it on and by the wait for the
victims' pods; any other step of the job clears it (placed, suspended, invalid, preempted in
turn, or planned afresh). A plan found written all the same (a write refused or lost to a
crash) evicts only a victim still on the run it had when the plan was made: one that started
before the preemptor began waiting and that it has not evicted. A victim evicted and admitted
again since (a time-slice turn leaves no preemptedBy), or a new job of the same name, is not
evicted on that stale word; the preemptor plans afresh, by the rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from modeljob.core.admission import AdmissionPlan, Queues
from modeljob.core.cluster_state import PodFacts
from modeljob.core.job_state import JobFacts, JobPhase, Requeue
from modeljob.core.nodes import NodeTable, PodRequest
from modeljob.core.preemption import FitTest, NoPreemption, Victim, choose_victims
from modeljob.core.preemption_rules import (
    DEFAULT_MAX_VICTIMS_PER_CYCLE,
    PodSlot,
    PreemptionHistory,
    PreemptionReason,
    PreemptionRules,
    RunningJob,
    WithinQueue,
    eligibility,
)
from modeljob.core.preemption_view import evictable_phase, holder_candidate, preemptor_of
from modeljob.core.quota import QuotaRequest, QuotaTest, admits_once_released, reclaimable_by
from modeljob.core.steps import Preempt, RollBack, Wait, evict

# A victim's status.preemptedBy keeps this many preemptors (the API's bound).
PREEMPTED_BY_KEPT = 16


def preempts(rules: PreemptionRules) -> bool:
    """Whether a queue's rules can ever preempt."""
    return (
        rules.within_queue is not WithinQueue.NEVER
        or rules.reclaim_borrowed
        or bool(rules.time_slice_seconds)
    )


class Preempting:
    """Preemption for one cycle: candidates, history and the per-cycle bound, shared by every
    preemptor of the cycle (a victim is chosen once)."""

    def __init__(
        self,
        jobs: Sequence[JobFacts],
        pods: Sequence[PodFacts],
        *,
        queues: Queues,
        admission: AdmissionPlan,
        now: datetime,
        settled: frozenset[str] | None = None,
        devices_per_node: Mapping[str, int] | None = None,
    ) -> None:
        """``settled``: the jobs whose own step this cycle leaves them running (candidates come
        from these only; None: every job). ``devices_per_node`` bounds the devices a pod is
        counted on, as the accounting does."""
        self.queues, self.admission = queues, admission
        self.now_seconds = now.timestamp()
        self.jobs = {job.ref: job for job in jobs}
        self.pods_by_uid: dict[str, list[PodFacts]] = defaultdict(list)
        for pod in pods:
            if pod.job_uid is not None:
                self.pods_by_uid[pod.job_uid].append(pod)
        self._pods, self._settled, self._devices = pods, settled, devices_per_node or {}
        self._candidates: dict[str, RunningJob] | None = None
        # Per queue, its candidates (marked for reclaim) until a victim is chosen: every admitted
        # job not placed asks, and the running jobs' charges do not change within a cycle.
        self._by_queue: dict[str, list[RunningJob]] = {}
        self.history = PreemptionHistory(
            edges=frozenset((p, job.ref) for job in jobs for p in job.preempted_by),
            counts={job.ref: job.preemptions for job in jobs if job.preemptions},
        )
        self.victims_left = DEFAULT_MAX_VICTIMS_PER_CYCLE
        self.chosen: set[str] = set()
        self._preempts: dict[str, bool] = {}  # by queue: its rules can ever preempt

    # --- a plan written earlier ---------------------------------------------------------------

    def resume(self, job: JobFacts) -> Preempt | Wait | None:
        """A preemptor's written plan: evict the victims a crash left running, or wait (its nodes
        kept) while their pods go; None once they are gone (plan it now) or without a plan."""
        if not job.preempting or job.placement:
            return None
        victims = [self.jobs[ref] for ref in job.preempting if ref in self.jobs]
        undone = [v for v in victims if _not_evicted_for(job, v) and v.ref not in self.chosen]
        if undone:
            evictions = tuple(self._evict(v, job, self._rule(job, v)) for v in undone)
            self.chosen.update(v.ref for v in undone)
            self._by_queue.clear()
            return Preempt(
                job=job,
                victims=evictions,
                nodes=job.nominated_nodes,
                message=f"completing a preemption planned before a restart: evicting {_names(undone)}",
                plan=job.preempting,
            )
        going = [pod for v in victims for pod in self._old_pods(v)]
        if not going:
            return None
        names = ", ".join(sorted({f"{p.namespace}/{p.name}" for p in going}))
        return Wait(
            job=job,
            message=f"waiting for the pods of the jobs it preempted to go ({names}); "
            f"nodes {', '.join(job.nominated_nodes) or 'none'} are kept for it",
            queue_position=0,
            keeps_plan=True,
        )

    def _old_pods(self, victim: JobFacts) -> list[PodFacts]:
        placed = {entry.pod for entry in victim.placement}
        return [p for p in self.pods_by_uid.get(victim.uid, []) if p.holds_resources and p.name not in placed]

    # --- a new preemption ---------------------------------------------------------------------

    def may_preempt(self, queue: str) -> bool:
        """Whether a job of ``queue`` may preempt now: its rules can, and the cycle's bound on
        victims is not spent (else ``preempt`` gives None, whatever the job)."""
        if self.victims_left <= 0:
            return False
        found = self._preempts.get(queue)
        if found is None:  # asked of every waiting job: its queue's answer kept for the cycle
            found = self._preempts[queue] = preempts(self.queues.rules(queue))
        return found

    def preempt(
        self, job: JobFacts, request: QuotaRequest, *, table: NodeTable, fits: FitTest, quota_refused: bool
    ) -> Preempt | str | None:
        """Victims that let ``job`` fit (and, when quota refused it, be admitted); the reason
        there are none; or None when its queue never preempts."""
        if not self.may_preempt(job.queue):
            return None
        rules = self.queues.rules(job.queue)
        found = choose_victims(
            preemptor_of(job),
            self._candidates_for(job.queue, rules),
            table=table,
            fits=fits,
            rules=rules,
            history=self.history,
            now_seconds=self.now_seconds,
            victims_left=self.victims_left,
            admits=self._admits(request) if quota_refused else None,
            unfit_now=True,  # planned on this table and not placed, or refused by quota as it is
        )
        if isinstance(found, NoPreemption):
            return found.reason
        if not found.victims:
            return None
        victims = [self.jobs[v.name] for v in found.victims]
        self.victims_left -= len(victims)
        self.chosen.update(v.ref for v in victims)
        self._by_queue.clear()
        evictions = tuple(self._evict(self.jobs[v.name], job, v.reason) for v in found.victims)
        nodes = tuple(sorted({pod.node for v in found.victims for pod in self.running[v.name].pods}))
        lost = found.lost_gpu_hours
        return Preempt(
            job=job,
            victims=evictions,
            nodes=nodes,
            message=f"preempting {_names(victims)} ({_rules(found.victims)}) to make room on "
            f"{', '.join(nodes)}; {lost:.2f} GPU-hours of work lost",
        )

    def _candidates_for(self, queue: str, rules: PreemptionRules) -> list[RunningJob]:
        """The running jobs not chosen yet, marked when ``queue`` may reclaim from them."""
        if queue not in self._by_queue:
            reclaim = self._reclaimable(queue) if rules.reclaim_borrowed else frozenset()
            self._by_queue[queue] = [
                replace(running, borrows_from_lender=ref in reclaim)
                for ref, running in self.running.items()
                if ref not in self.chosen
            ]
        return self._by_queue[queue]

    def _admits(self, request: QuotaRequest) -> QuotaTest:
        running = {charge.job: charge for charge in self.admission.running}
        return admits_once_released(request, self.queues.tree, self.admission.usage, running)

    def _reclaimable(self, queue: str) -> frozenset[str]:
        return frozenset(use.job for use in reclaimable_by(queue, self.queues.tree, self.admission.running))

    def _rule(self, preemptor: JobFacts, victim: JobFacts) -> PreemptionReason | str:
        """The rule a resumed plan's victim falls under now (the plan names victims, not rules)."""
        running = self.running.get(victim.ref)
        if running is None:
            return "Resumed"
        return eligibility(
            preemptor_of(preemptor),
            replace(running, borrows_from_lender=victim.ref in self._reclaimable(preemptor.queue)),
            rules=self.queues.rules(preemptor.queue),
            preempted_before=frozenset(),
            now_seconds=self.now_seconds,
        )

    def _evict(self, victim: JobFacts, preemptor: JobFacts, rule: PreemptionReason | str) -> RollBack:
        rule_name = rule.value if isinstance(rule, PreemptionReason) else "Resumed"
        live = tuple(sorted(p.name for p in self.pods_by_uid.get(victim.uid, []) if not p.terminating))
        step = evict(
            victim,
            live,
            reason="Preempted",
            message=f"preempted by {preemptor.ref} ({rule_name}: {self._why(victim, preemptor, rule)}); "
            "back in the queue",
            phase=JobPhase.QUEUED,
            requeue=Requeue.PREEMPTED,
        )
        return replace(step, preempted_by=preemptor.ref, preemption_rule=rule_name)

    def _why(self, victim: JobFacts, preemptor: JobFacts, rule: PreemptionReason | str) -> str:
        rules = self.queues.rules(preemptor.queue)
        if rule is PreemptionReason.RECLAIM_BORROWED:
            return f"queue {preemptor.queue} takes back the quota queue {victim.queue} borrowed from it"
        if rule is PreemptionReason.LOWER_PRIORITY:
            return f"priority {victim.priority} below {preemptor.priority} in queue {victim.queue}"
        if rule is PreemptionReason.TIME_SLICE:
            used = _seconds(rules.time_slice_seconds)
            return f"it used its time slice of {used} while queue {victim.queue} has waiting jobs"
        if rule is PreemptionReason.SHORTER_REMAINING_TIME:
            running = self.running.get(victim.ref)
            theirs = running.remaining_seconds(self.now_seconds) if running is not None else None
            ours = preemptor_of(preemptor).remaining_seconds
            return f"{_seconds(theirs)} remaining against the preemptor's {_seconds(ours)}"
        return str(rule)

    @property
    def running(self) -> dict[str, RunningJob]:
        """The candidates, built the first time a preemption is considered (most cycles never do)."""
        if self._candidates is None:
            slots = _slots_by_pod(self._pods, self._devices)
            self._candidates = {
                job.ref: found
                for job in self.jobs.values()
                if (self._settled is None or job.ref in self._settled)
                and (found := self._running(job, slots)) is not None
            }
        return self._candidates

    def _running(self, job: JobFacts, all_slots: Mapping[tuple[str, str], PodSlot]) -> RunningJob | None:
        """A candidate: a placed job whose pods run (a plan still binding is not one)."""
        if not evictable_phase(job):
            return None
        placed = {entry.pod for entry in job.placement}
        slots = tuple(
            all_slots[p.key]
            for p in self.pods_by_uid.get(job.uid, [])
            if p.name in placed and p.key in all_slots
        )
        if not slots:
            return None
        return holder_candidate(job, slots)


def _not_evicted_for(preemptor: JobFacts, victim: JobFacts) -> bool:
    """Whether a victim a written plan names still runs the run it had when the plan was made.
    The plan was made while the preemptor waited, so a run that began before it began waiting
    is that run; one begun later is a run the victim was admitted to again after its eviction
    (or a new job of the same name): the preemptor then plans afresh, by the rules. Conditions
    keep whole seconds, and a victim's old run may have begun in the second the preemptor
    began waiting: that second counts as before (to be taken for its old run, an evicted victim
    would have to lose its pods and be placed again within that very second)."""
    if not victim.placement or preemptor.ref in victim.preempted_by:
        return False
    waiting_since = preemptor.queued_since or preemptor.created
    return (victim.started or victim.created) <= waiting_since


def _slots_by_pod(pods: Sequence[PodFacts], devices: Mapping[str, int]) -> dict[tuple[str, str], PodSlot]:
    """Every pod holding resources as the ledger holds it. The accounting fills a node's devices
    from 0 (core/cluster_state.py ``account``) and whole devices are alike, so numbering each
    node's devices in pod order frees the right count wherever a victim's pods are released."""
    next_device: dict[str, int] = defaultdict(int)
    slots = {}
    for pod in sorted((p for p in pods if p.holds_resources and p.node), key=lambda p: (str(p.node), p.key)):
        node = str(pod.node)
        gpus = pod.requests.gpus if pod.accelerator is not None else 0
        gpus = max(0, min(gpus, devices.get(node, 0) - next_device[node]))  # as ``account`` caps it
        slots[pod.key] = PodSlot(
            node=node,
            request=PodRequest(resources=pod.requests, accelerator=pod.accelerator or "nvidia.com/gpu"),
            devices=tuple(range(next_device[node], next_device[node] + gpus)),
        )
        next_device[node] += gpus
    return slots


def _names(jobs: Sequence[JobFacts]) -> str:
    return ", ".join(sorted(job.ref for job in jobs))


def _rules(victims: Sequence[Victim]) -> str:
    return ", ".join(sorted({v.reason.value for v in victims}))


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}s"


def victims_of(steps: Sequence[object]) -> Mapping[str, RollBack]:
    """The victims' evictions among a cycle's steps, by "ns/name"."""
    return {v.job.ref: v for step in steps if isinstance(step, Preempt) for v in step.victims}
