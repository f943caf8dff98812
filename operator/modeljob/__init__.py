"""modeljob: size, queue, gang-place and bind AI model jobs on Kubernetes GPU clusters.

Architecture: a pure, deterministic core (``modeljob.core``: sizing, queueing, scoring, gang
placement, trace simulation) takes plain frozen values and returns decisions with their reasons.
Thin adapters translate the world at the edges: ``modeljob.api`` holds the pydantic models of the
ModelJob resource (and generates the CRD from them), ``modeljob.adapters`` talks to Kubernetes
(kopf handlers, the cluster gateway, the scheduler-extender HTTP server, metrics), and
``modeljob.commands`` are the CLI's subcommands. The same core serves the operator, the
extender, ``modeljob estimate`` and ``modeljob simulate``.
"""

__version__ = "0.1.0"
