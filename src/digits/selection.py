"""Which trial the search hands to training: the one-standard-error rule.

Trial scores are validation NLLs after a short run (lower is better) and carry seed noise: two
configurations whose scores differ by less than one seed standard deviation are not told apart
by one run each. The one-standard-error rule (Breiman, Friedman, Olshen and Stone (1984),
*Classification and Regression Trees*; Hastie, Tibshirani and Friedman (2009), *The Elements of
Statistical Learning*, 2nd ed., section 7.10) takes the simplest model among those within one
standard error of the best; here "simplest" is the fewest FLOPs per image, a property of the
model, not of the machine.

Everything here is a pure function of the recorded numbers, so the choice is the same wherever
the records are read. Free of TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from digits.errors import DigitsError


@dataclass(frozen=True)
class Candidate:
    """One scored trial: its 1-based number, score (lower is better) and FLOPs per image."""

    trial: int
    score: float
    flops: int


@dataclass(frozen=True)
class Decision:
    """The best trial, the band's upper limit (best score + `standard_error`; the best score
    itself under `best` selection) and the chosen trial."""

    best: Candidate
    standard_error: float | None
    band_limit: float
    chosen: Candidate


def pooled_sd(groups: Sequence[Sequence[float]]) -> float | None:
    """The pooled sample standard deviation of several groups of repeated scores: the square
    root of sum((n_i - 1) s_i^2) / sum(n_i - 1), s_i each group's sample variance. Groups of
    fewer than 2 scores add nothing; None when no group has 2."""
    squares, freedom = 0.0, 0
    for group in groups:
        if len(group) < 2:
            continue
        mean = math.fsum(group) / len(group)
        squares += math.fsum((score - mean) ** 2 for score in group)
        freedom += len(group) - 1
    return math.sqrt(squares / freedom) if freedom else None


def best_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The lowest score; the earliest trial wins a tie (as in Keras Tuner). Raises DigitsError
    when there is no candidate."""
    if not candidates:
        raise DigitsError(
            "no trial completed; every trial failed. Rerun with KERASTUNER_DEBUG=1 to see why, "
            "or check tuner.space in params.yaml"
        )
    return min(candidates, key=lambda c: (c.score, c.trial))


def decide(
    candidates: Sequence[Candidate],
    standard_error: float | None,
    rule: Literal["one_se", "best"],
) -> Decision:
    """Apply `rule`: `best` takes the best score; `one_se` the fewest FLOPs among the trials
    scoring at most best + `standard_error` (the edge included), the earliest trial among equal
    FLOPs. Ties are broken by trial number, never by score, so perturbing every score by far less
    than the standard error changes the choice only for a trial at the band's very edge.

    Raises DigitsError when there is no candidate, or when `one_se` has no standard error.
    """
    best = best_candidate(candidates)
    if rule == "best":
        return Decision(best, standard_error, best.score, best)
    if standard_error is None or not math.isfinite(standard_error):
        raise DigitsError(
            "selection one_se needs the seed noise of the re-scored trials; set "
            "tuner.rescored_trials and tuner.noise_seeds to 2 or more, or tuner.selection: best"
        )
    limit = best.score + standard_error
    inside = [candidate for candidate in candidates if candidate.score <= limit]
    chosen = min(inside, key=lambda c: (c.flops, c.trial))
    return Decision(best, standard_error, limit, chosen)
