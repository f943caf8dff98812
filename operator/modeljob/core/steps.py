"""What the scheduling cycle decided for one job: a closed set of steps, each with its reason.

The scheduling loop acts on a step and nothing else (adapters/scheduling_loop.py dispatches on
the type), and core/status.py turns each step into the status patch it writes. Every step names
its job and the stray pods to delete before acting (pods of an earlier attempt, never the plan's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeljob.core.gang_request import Assignment
from modeljob.core.job_state import JobFacts, JobPhase, Placed, Requeue
from modeljob.core.node_choice import figures
from modeljob.core.node_types import Candidate, NodeType


@dataclass(frozen=True, slots=True)
class NodeTypeTried:
    """One node type a job was planned on: its mean score if the job fits there now, else why not."""

    node_type: NodeType
    gpus_per_replica: int
    mean_score: float | None
    reason: str = ""
    price_per_replica_hour: float | None = None

    def describe(self, *, chosen: bool = False, decimals: int = 2) -> str:
        """This type's line of the Scheduled Event; ``decimals`` as the other types' scores need
        (``Place.decimals``), so two different mean scores never read alike."""
        what = self.node_type.describe()
        if self.mean_score is None:
            return f"{what}: {self.reason}"
        mark = " (chosen)" if chosen else ""
        score = f"{self.mean_score:.{decimals}f}"
        return f"{what}: {self.gpus_per_replica} GPU(s)/replica, mean score {score}{mark}"

    def preferred_over(self, other: NodeTypeTried) -> str:
        """Why this type comes before ``other`` when their plans score alike: the sizing's order
        (core/node_types.py): cheaper per replica, then fewer GPUs, then larger devices."""
        mine, theirs = self.price_per_replica_hour, other.price_per_replica_hour
        if mine is not None and (theirs is None or mine < theirs):
            cost = f"{mine:.2f}/h vs {theirs:.2f}/h" if theirs is not None else "the other has no price"
            return f"cheaper per replica ({cost})"
        if self.gpus_per_replica < other.gpus_per_replica:
            return f"fewer GPUs per replica ({self.gpus_per_replica} vs {other.gpus_per_replica})"
        if self.node_type.device_memory_bytes > other.node_type.device_memory_bytes:
            return "larger devices"
        return "first in node type order"


@dataclass(frozen=True, slots=True)
class Roll:
    """One replica of a serving job to replace in a rolling update (core/rolling.py), and where the
    update stands: ``updated`` of ``total`` replicas run the current spec."""

    replica: int
    old: tuple[Placed, ...]  # its placement entries now: the pods the new ones replace
    updated: int
    total: int
    max_unavailable: int
    phase: JobPhase  # the phase the job's pods give it meanwhile (old pods serving count)

    @property
    def progress(self) -> str:
        return f"{self.updated} of {self.total} replicas updated (maxUnavailable {self.max_unavailable})"

    def surge(self, nodes: Sequence[str]) -> str:
        """The Updating message of a replica whose new pods start beside its old ones."""
        old = ", ".join(e.pod for e in self.old)
        return (
            f"replacing replica {self.replica}: its new pod starts on {', '.join(nodes)} while the old "
            f"pod {old} serves; {self.progress}"
        )

    def old_first(self, why: str) -> str:
        """The Updating message of a replica whose old pods go before its new ones can start."""
        old = ", ".join(e.pod for e in self.old)
        return (
            f"replacing replica {self.replica}: no room for its new pod beside the old one ({why}), "
            f"so the old pod {old} goes first; {self.progress}"
        )


def pod_of_group(member: int, grouped: bool) -> str:
    """' pod 1' after a replica's number where replicas span nodes, else nothing."""
    return f" pod {member}" if grouped else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """What every step says: its job, and the stray pods to delete before acting on it."""

    job: JobFacts
    delete_pods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Keep(_Step):
    """Nothing to do: not admitted yet, finished, Invalid without pods, or all is well."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPhase(_Step):
    """The pods moved on (Running, Succeeded, Failed): write the phase they give the job."""

    phase: JobPhase
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Place(_Step):
    """A new placement: write it, then create and bind its pods, then mark the job Scheduled."""

    candidate: Candidate
    placement: tuple[Assignment, ...]  # replica numbers of the job, scores rounded for status
    tried: tuple[NodeTypeTried, ...]  # every node type planned on, the chosen one among them
    replaces: Roll | None = None  # a rolling update's new pods, started beside the replica's old ones
    # The scheduling attempt that placed the job (1 + the cycles that left it waiting; 1: the
    # first), and what it was last told while it waited: the loop counts them (core/attempts.py),
    # the cycle never does.
    attempt: int = 1
    waited: str = ""

    @property
    def decimals(self) -> int:
        """How many decimals the node types' mean scores are shown with, in the Event and the
        condition alike: the fewest that show every two different ones different."""
        return figures(t.mean_score for t in self.tried if t.mean_score is not None)

    @property
    def message(self) -> str:
        """Why this node type and these nodes: every node type tried, with its mean score or why it
        failed, then each replica's node, score and what set that node apart from the runner-up."""
        decimals = self.decimals
        parts = [
            t.describe(chosen=t.node_type == self.candidate.node_type, decimals=decimals) for t in self.tried
        ]
        grouped = any(a.member for a in self.placement)
        replicas = [
            f"replica {a.replica}{pod_of_group(a.member, grouped)} -> {a.node} (score {a.score:.2f}"
            + (f"; {a.why})" if a.why else ")")
            for a in self.placement
        ]
        return "planned on each node type the job was sized for: " + "; ".join(parts + replicas)

    @property
    def decided(self) -> str:
        """A short clause for the Scheduled condition: what separated the chosen node type from the
        best other one, and the first replica's node from the runner-up."""
        chosen = next((t for t in self.tried if t.node_type == self.candidate.node_type), None)
        rivals = [t for t in self.tried if t is not chosen and t.mean_score is not None]
        parts: list[str] = []
        if chosen is not None and chosen.mean_score is not None and rivals:
            rival = max(rivals, key=lambda t: t.mean_score or 0.0)
            assert rival.mean_score is not None
            mine, theirs = f"{chosen.mean_score:.{self.decimals}f}", f"{rival.mean_score:.{self.decimals}f}"
            if chosen.mean_score > rival.mean_score:
                parts.append(f"{mine} beat {theirs} on {rival.node_type.describe()}")
            else:
                parts.append(
                    f"tied with {rival.node_type.describe()} at {theirs}, {chosen.preferred_over(rival)}"
                )
        if self.placement and self.placement[0].why:
            parts.append(f"replica {self.placement[0].replica}: {self.placement[0].why}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait(_Step):
    """Stays in the queue: it fits the cluster, not now (or waits behind a job, strict order)."""

    message: str
    queue_position: int
    candidate: Candidate | None = None  # the preferred node type, whose estimate status shows
    phase: JobPhase = JobPhase.QUEUED  # a partly placed job keeps the phase its pods give it
    # A preemptor waiting for its victims' pods to go: its written plan (status.preempting) stays.
    # Any other step of a job clears a plan it finds written (core/preempting.py).
    keeps_plan: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Unschedulable(_Step):
    """Can never fit the cluster as it is; re-checked every cycle."""

    message: str
    candidate: Candidate | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Complete(_Step):
    """A written placement is not fully bound (the operator stopped midway): bind the rest."""

    candidate: Candidate | None  # sized by the cycle (core/lifecycle.py leaves it None)
    to_bind: tuple[Placed, ...] = ()  # entries whose pod must be created or bound
    to_create: tuple[str, ...] = ()  # the pods among to_bind that do not exist yet


@dataclass(frozen=True, slots=True, kw_only=True)
class RollBack(_Step):
    """Delete the job's pods (all, or all but ``keep``), clear the placement, go back to ``phase``.

    The one way a job gives its nodes back: requeued after a lost node or pod, recreated after a
    failure (``restart``), suspended, or (the queue's) preempted; built by ``evict``. The status
    is written first (placement cut to ``keep``, ``status.restarts`` counted once), then the pods
    are deleted: after a crash in between, they are strays the next cycle deletes, and no
    failure is counted twice or lost. The capacity comes back through the accounting of the
    pods, the one ledger, as their deletion shows.

    ``reason`` is CamelCase (the Event reason and the Scheduled condition's); ``was_binding``
    says whether a written plan is undone (Binding condition RolledBack) or a bound one.
    """

    reason: str
    message: str
    phase: JobPhase
    requeue: Requeue | None = None
    keep: tuple[Placed, ...] = ()
    was_binding: bool = False
    invalid_spec: bool = False  # the API server refused the job's pods: Valid=False, not requeued
    restart: bool = False  # recreated after a failure: status.restarts counts one more
    warning: bool = True  # the Event's type: a suspension the user asked for is Normal
    updating: bool = False  # a rolling update's old pods going first: the Updating condition says so
    preempted_by: str | None = None  # evicted for this job ("ns/name"): the Preempted condition says so
    preemption_rule: str = ""  # the rule that allowed it (core/preemption_rules.py PreemptionReason)

    @property
    def grace_zero(self) -> bool:
        """Pods on a lost node are deleted at once: their kubelet will never confirm."""
        return self.requeue is Requeue.NODE_LOST


@dataclass(frozen=True, slots=True, kw_only=True)
class Update(_Step):
    """A serving job's rolling update as its pods show it (core/rolling.py): the Updating condition
    (True while replicas are replaced, False once all run the current spec) and the phase, which
    counts a replica whose old pod still serves as running."""

    phase: JobPhase
    message: str
    done: bool = False
    blocked: bool = False  # the new spec can never fit: the old pods keep serving


@dataclass(frozen=True, slots=True, kw_only=True)
class Preempt(_Step):
    """Room for ``job`` by evicting ``victims`` (whole jobs, each a RollBack from ``evict``).

    The plan is written first, on the preemptor (status.preempting, status.nominatedNodes), then
    each victim is evicted; after a crash in between, the next cycle evicts the listed victims
    not yet evicted (core/preempting.py), so each victim ends fully evicted or fully kept. The
    preemptor waits, its nominated nodes kept from other jobs, until the victims' pods are gone.
    """

    victims: tuple[RollBack, ...]
    nodes: tuple[str, ...]  # where the victims' pods run: reserved for the preemptor
    message: str
    queue_position: int = 0
    plan: tuple[str, ...] = ()  # a plan carried on after a restart: every victim it names ("ns/name")


Step = Keep | SetPhase | Place | Wait | Unschedulable | Complete | RollBack | Update | Preempt


def evict(
    job: JobFacts,
    pods: Sequence[str],
    *,
    reason: str,
    message: str,
    phase: JobPhase,
    requeue: Requeue | None = None,
    keep: Sequence[Placed] = (),
    restart: bool = False,
    warning: bool = True,
) -> RollBack:
    """Give a job's nodes back: delete ``pods`` (every pod of it but those of ``keep``), keep the
    job and its estimate, and put it in ``phase`` (Queued to be planned again, Suspended, ...).
    Restarts, suspension and (next) preemption all go through here, so the order of writes that
    makes a crash safe (RollBack) holds for each."""
    return RollBack(
        job=job,
        reason=reason,
        message=message,
        phase=phase,
        requeue=requeue,
        delete_pods=tuple(pods),
        keep=tuple(keep),
        was_binding=job.binding,
        restart=restart,
        warning=warning,
    )


def binding_failed(
    job: JobFacts, placement: Sequence[Placed], why: str, *, keep: Sequence[Placed] = ()
) -> RollBack:
    """Undo a placement the loop wrote but could not bind: every pod of it but those in ``keep``."""
    kept = tuple(keep)
    return RollBack(
        job=job,
        reason=Requeue.BINDING_FAILED.value,
        message=f"binding failed, rolled back: {why}",
        phase=(job.phase if kept else JobPhase.QUEUED) if job.phase else JobPhase.QUEUED,
        requeue=Requeue.BINDING_FAILED,
        delete_pods=tuple(e.pod for e in placement if e not in kept),
        keep=kept,
        was_binding=True,
    )


def pods_refused(job: JobFacts, placement: Sequence[Placed], why: str) -> RollBack:
    """The API server refused a pod of the job's template (422): the spec is at fault, not the
    cluster, so the job is Invalid until its spec changes, with the server's words."""
    return RollBack(
        job=job,
        reason="InvalidSpec",
        message=f"the API server refused the job's pod: {why}",
        phase=JobPhase.INVALID,
        delete_pods=tuple(e.pod for e in placement),
        was_binding=True,
        invalid_spec=True,
    )


def placed_entries(step: Place, pod_names: Mapping[tuple[int, int], str]) -> tuple[Placed, ...]:
    """The new status.placement of a Place step: the kept entries plus the planned replicas (a
    replica a rolling update replaces has its old entries replaced)."""
    planned = tuple(
        Placed(
            replica=p.replica, pod=pod_names[p.replica, p.member], node=p.node, score=p.score, member=p.member
        )
        for p in step.placement
    )
    replaced = step.replaces.replica if step.replaces is not None else None
    kept = tuple(e for e in step.job.placement if e.replica != replaced)
    return tuple(sorted((*kept, *planned), key=lambda e: (e.replica, e.member)))
