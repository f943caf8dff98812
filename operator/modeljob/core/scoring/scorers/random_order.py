"""Random: a seeded, reproducible random score per node (spreads load with no pattern)."""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

from modeljob.core.nodes import FloatArray, IntArray, NodeTable
from modeljob.core.scoring.plugin import FunctionScorer

UInt64Array = npt.NDArray[np.uint64]


def _splitmix64(values: UInt64Array) -> UInt64Array:
    """A strong 64-bit mixer (Steele et al., SplitMix), so nearby inputs give unrelated outputs."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def score_random(table: NodeTable, rows: IntArray, *, seed: int) -> FloatArray:
    """0..1 per row, uniform; the same seed and node name always give the same score.

    A node's draw depends only on the seed and its name, so adding or removing other nodes does
    not reshuffle the rest.
    """
    names = np.array([zlib.crc32(table.names[int(r)].encode()) for r in rows], dtype=np.uint64)
    mixed = _splitmix64((np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) | names)
    result: FloatArray = (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return result


SCORER = FunctionScorer(
    name="random",
    position=8,
    function=lambda table, rows, _, context: score_random(table, rows, seed=context.seed),
    row_local=False,  # kept out of per-row caches: cheap, and its draw follows the context's seed
)
