"""Sizing: model + work + device type -> a replica's layout, GPU memory, CPU, RAM and disk, with reasons.

Every number comes from a rule in docs/sizing.md, which gives each formula with its source. The
public API is re-exported here; the rules live in the modules by what they size: constants (the
numbers and storage formats with their sources), defaults (the recipe a spec leaves open), inputs
(device, checks, model architecture), layout and choice (tensor/pipeline parallel over one node or
whole nodes), model_states, activations, gpu_memory, host, and estimate (the entry point, its value
and the misfit explanation).
"""

from modeljob.core.sizing.constants import MAX_GPUS_PER_NODE
from modeljob.core.sizing.estimate import Estimate, Rule, size_replica
from modeljob.core.sizing.host import shared_memory_per_node_bytes
from modeljob.core.sizing.inputs import Device, SizingError

__all__ = [
    "MAX_GPUS_PER_NODE",
    "Device",
    "Estimate",
    "Rule",
    "SizingError",
    "shared_memory_per_node_bytes",
    "size_replica",
]
