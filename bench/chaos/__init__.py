"""The chaos soak (`make chaos`, docs/reliability.md): a stream of ModelJobs through leader kills,
control-plane restarts and node flaps, watched by an invariant checker.

Modules: env (the control plane, nodes, queues, the operator replicas), faults (what breaks and
when), workload (the well-formed jobs and what happens to them), hostile (absurd input),
invariants (the checker), report (docs/reliability.md). Run it as `python -m bench.chaos`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# modeljob from this checkout, tests.cluster, and bench/'s own modules (failover, report).
for _path in (REPO / "bench", REPO / "operator", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
