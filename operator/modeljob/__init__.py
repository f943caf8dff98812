"""modeljob: size, queue, gang-place and bind AI model jobs on Kubernetes GPU clusters.

Architecture: a pure, deterministic core (``modeljob.core``) takes plain frozen values and returns
decisions with their reasons. ``sizing`` and ``node_types`` size a job per node type; ``nodes``
holds the node table and its one capacity ledger; ``scoring`` ranks nodes through scorer plug-ins
(``scoring/scorers/``, one module each); ``gang_placement`` plans a gang whole or not at all;
``planning`` plans a job on each node type it was sized for; ``scheduling_cycle`` turns a snapshot
into ``steps`` (Place, Wait, RollBack, ...) and ``status`` turns each step into its status patch.
``core.sim`` holds the trace replay and queue simulator, apart from the operator's decisions (which
never import it). Thin adapters translate the world at the edges: ``modeljob.api`` holds the
pydantic models of the ModelJob resource (and generates the CRD from them); ``modeljob.adapters``
reads and writes Kubernetes (``kube_*.py`` translate its dicts, ``cluster`` is the only client),
runs the kopf handlers, the scheduling loop, the scheduler-extender HTTP server and the metrics;
``modeljob.commands`` are the CLI's subcommands. The same core serves the operator, the extender,
``modeljob estimate`` and ``modeljob simulate``.
"""

__version__ = "0.1.0"
