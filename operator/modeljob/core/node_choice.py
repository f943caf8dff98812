"""Why a plan chose its node: what set it apart from the runner-up, in numbers that read different."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from modeljob.core.nodes import IntArray, NodeTable
from modeljob.core.scoring.ranking import NodeScores


def figures(values: Iterable[float]) -> int:
    """The fewest decimals (2 to 4) that show every distinct value among ``values`` distinct, so
    two different scores never read the same in one message; 4 where even that cannot."""
    distinct = set(values)
    for digits in (2, 3):
        if len({f"{value:.{digits}f}" for value in distinct}) == len(distinct):
            return digits
    return 4


def apart(first: float, second: float) -> tuple[str, str]:
    """Both scores with the fewest decimals (2 to 4) that show them different (see ``figures``),
    for a message that says one beat the other."""
    digits = figures((first, second))
    return f"{first:.{digits}f}", f"{second:.{digits}f}"


def separation(table: NodeTable, rows: IntArray, scores: NodeScores, winner: int) -> str:
    """What set the chosen node (``rows[winner]``) apart from the best of the others.

    The scorers whose parts differed between the two, with both values, when the totals differ;
    otherwise how many nodes tied and that the name decided. Both scorers of the default policy
    centre on 0.5 ("placing here changes nothing"), so on an idle cluster a tie is the usual case
    and saying so is the explanation.
    """
    if len(rows) == 1:
        return "the only node with room"
    total = scores.total
    others = np.delete(np.arange(len(rows)), winner)
    runner = int(others[np.argmax(total[others])])
    runner_name = table.names[int(rows[runner])]
    if total[winner] == total[runner]:
        tied = int(np.count_nonzero(total == total[winner]))
        return f"{tied} nodes tied at {float(total[winner]):.2f}, the first by name won"
    differed = [
        "{} {} vs {}".format(scorer.name, *apart(float(values[winner]), float(values[runner])))
        for scorer, _, values in scores.parts
        if values[winner] != values[runner]
    ]
    lead = apart(float(total[winner] - total[runner]), 0.0)[0]
    return f"ahead of {runner_name} by {lead} ({', '.join(differed)})"
