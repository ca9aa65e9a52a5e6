"""Streaming anomaly detectors: one pass over a series, bounded state per series.

Every detector scores a point against what it expected *before* seeing it, then
learns from it. Each reports, per point, a signed `score` (how far from expected,
in the detector's own unit), the `expected` value, the `low`..`high` range it
would have accepted, and whether the point is `anomalous`. While it has seen fewer
than `warmup` points a detector flags nothing: a baseline built from three points
would alarm on noise.

Anomalous points do not teach the baseline (an incident must not become the new
normal within a few points), unless `adapt_after` of them come in a row: then the
series has moved to a new level, and the detector starts learning it afresh.

Detectors score whole runs of one series (`score(state, values, times)`): the
dataflows call them once per series per batch, so the per-point cost is a few
float operations in one loop, not a Python call per event.

Methods and their parameters (the `anomaly-models` topic names them):

| method | parameters (default) |
|---|---|
| `ewma` | `alpha` (0.05) smoothing; `z` (5.0) alarm at mean ± z·std; `warmup` (10); `min_std_pct` (1.0) floor of std as % of the mean; `adapt_after` (30) |
| `mad` | `window` (60) points kept; `z` (5.0) robust z (0.6745·(x−median)/MAD); `warmup` (10); `min_std_pct` (1.0); `adapt_after` (30) |
| `seasonal` | additive Holt-Winters without trend: `period_s` (86400), `slots` (24) per period, `alpha` (0.05) level, `gamma` (0.3) season, `z` (5.0), `warmup` (10), `min_std_pct` (1.0), `adapt_after` (30) |
| `threshold` | `above`, `below` (unset: no bound); no warm-up |

Every method but threshold also takes `direction`: `both` (default), `up` (only
rises are anomalies: latency, error counts) or `down` (only drops), and `counts`
(0 or 1): the values are counts, so the std is at least sqrt(expected), Poisson
noise (a MAD of 0 over counts of 6 must not make a 10 an anomaly).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl

MAD_TO_STD = 1.4826
"""MAD x this = the standard deviation, for normal noise."""
DIRECTIONS = {"both": 0, "up": 1, "down": -1}


@dataclass
class Scores:
    """Per point of one scored run: parallel lists."""

    score: list[float] = field(default_factory=list)
    expected: list[float | None] = field(default_factory=list)
    low: list[float | None] = field(default_factory=list)
    high: list[float | None] = field(default_factory=list)
    anomalous: list[bool] = field(default_factory=list)

    def add(
        self, score: float, expected: float | None, low: float | None, high: float | None, bad: bool
    ) -> None:
        self.score.append(score)
        self.expected.append(expected)
        self.low.append(low)
        self.high.append(high)
        self.anomalous.append(bad)


class ParameterError(ValueError):
    """A model's parameters are unusable; the message names the parameter."""


def _float(params: Mapping[str, Any], name: str, default: float | None, low: float, high: float):
    value = params.get(name, default)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value} is not a number") from None
    if not (low <= number <= high):
        raise ParameterError(f"{name}={value} is outside [{low:g}, {high:g}]")
    return number


def _direction(params: Mapping[str, Any]) -> int:
    value = params.get("direction", "both")
    if value in DIRECTIONS:
        return DIRECTIONS[str(value)]
    if value in (-1, 0, 1, -1.0, 0.0, 1.0):  # the topic's params are numbers
        return int(value)
    raise ParameterError(f"direction={value!r} is not one of both, up, down (or 0, 1, -1)")


class Detector:
    """Base of the learning detectors: parameters are validated once, at construction."""

    method: ClassVar[str]
    known: ClassVar[frozenset[str]]

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = dict(params or {})
        unknown = set(params) - self.known - {"direction", "counts"}
        if unknown:
            raise ParameterError(
                f"{self.method} has no parameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(sorted(self.known | {'direction', 'counts'}))}"
            )
        self.params = params
        self.direction = _direction(params)
        self.z = _float(params, "z", 5.0, 0.1, 1e6)
        self.warmup = int(_float(params, "warmup", 10, 0, 1e6))  # type: ignore[arg-type]
        self.min_std = _float(params, "min_std_pct", 1.0, 0.0, 1e6) / 100.0  # type: ignore[operator]
        self.adapt_after = int(_float(params, "adapt_after", 30, 1, 1e9))  # type: ignore[arg-type]
        self.counts = bool(_float(params, "counts", 0, 0, 1))

    def floor(self, expected: float) -> float:
        """The smallest std the detector believes: a baseline of identical points (a MAD of
        0) must not make the next small wobble an anomaly."""
        spread = self.min_std * abs(expected)
        if self.counts:  # Poisson noise: a count of n varies by about sqrt(n)
            spread = max(spread, math.sqrt(abs(expected)), 1.0)
        return max(spread, 1e-9)

    def new_state(self) -> Any:
        raise NotImplementedError

    def score(self, state: Any, values: Sequence[float], times: Sequence[float]) -> Scores:
        """Score `values` (at `times`, Unix seconds) in order, updating `state` in place."""
        raise NotImplementedError

    def _is_bad(self, deviation: float, limit: float) -> bool:
        d = self.direction
        return (
            deviation >= limit
            if d > 0
            else -deviation >= limit
            if d < 0
            else abs(deviation) >= limit
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.method}({shown})"


@dataclass
class EwmaState:
    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    weight: float = 0.0
    """Total weight of the variance's terms, 1 - (1 - alpha)^(n - 1): dividing by it
    removes the bias of a variance started at 0 (without it, z-scores run high early)."""
    streak: int = 0
    """Anomalous points in a row."""


class Ewma(Detector):
    """Exponentially weighted mean and variance; z-score against them."""

    method = "ewma"
    known = frozenset({"alpha", "z", "warmup", "min_std_pct", "adapt_after"})

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.alpha = _float(self.params, "alpha", 0.05, 1e-6, 1.0)

    def new_state(self) -> EwmaState:
        return EwmaState()

    def score(self, state: EwmaState, values: Sequence[float], times: Sequence[float]) -> Scores:
        # The hot loop of the anomalies flow: locals only, no calls per point but sqrt.
        out = Scores()
        scores, expected, lows, highs, flags = (
            out.score,
            out.expected,
            out.low,
            out.high,
            out.anomalous,
        )
        a, z, warmup, adapt = self.alpha, self.z, self.warmup, self.adapt_after
        pct, counts, direction = self.min_std, self.counts, self.direction
        sqrt = math.sqrt
        n, mean, var, weight, streak = state.n, state.mean, state.var, state.weight, state.streak
        for x in values:
            if n == 0:
                scores.append(0.0)
                expected.append(None)
                lows.append(None)
                highs.append(None)
                flags.append(False)
                n, mean, var, weight = 1, x, 0.0, 0.0
                continue
            std = sqrt(var / weight) if weight else 0.0
            floor = pct * (mean if mean >= 0 else -mean)
            if counts:
                floor = max(floor, self.floor(mean))
            if std < floor:
                std = floor
            if std < 1e-9:
                std = 1e-9
            deviation = x - mean
            score = deviation / std
            scores.append(score)
            expected.append(mean)
            lows.append(mean - z * std)
            highs.append(mean + z * std)
            if n >= warmup and (
                (score >= z or -score >= z)
                if direction == 0
                else (score >= z if direction > 0 else -score >= z)
            ):
                flags.append(True)
                streak += 1
                if streak >= adapt:  # a new level: learn it from here
                    n, mean, var, weight, streak = 1, x, 0.0, 0.0, 0
                continue
            flags.append(False)
            streak = 0
            n += 1
            mean += a * deviation
            var = (1 - a) * var + a * deviation * deviation
            weight = (1 - a) * weight + a
        state.n, state.mean, state.var, state.weight = n, mean, var, weight
        state.streak = streak
        return out


@dataclass
class MadState:
    window: deque[float] = field(default_factory=deque)
    sorted_values: list[float] = field(default_factory=list)
    streak: int = 0


class Mad(Detector):
    """Median and median absolute deviation of the last `window` normal points."""

    method = "mad"
    known = frozenset({"window", "z", "warmup", "min_std_pct", "adapt_after"})

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.size = int(_float(self.params, "window", 60, 3, 10_000))  # type: ignore[arg-type]
        self.warmup = min(self.warmup, self.size)

    def new_state(self) -> MadState:
        return MadState()

    def score(self, state: MadState, values: Sequence[float], times: Sequence[float]) -> Scores:
        out = Scores()
        z, size, adapt = self.z, self.size, self.adapt_after
        window, ordered = state.window, state.sorted_values
        while len(window) > size:  # the window was made smaller by a model update
            ordered.pop(bisect.bisect_left(ordered, window.popleft()))
        for x in values:
            n = len(ordered)
            if n == 0:
                out.add(0.0, None, None, None, False)
            else:
                median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
                deviations = sorted([abs(v - median) for v in ordered])
                mad = deviations[n // 2]
                std = max(mad * MAD_TO_STD, self.floor(median))
                score = (x - median) / std
                bad = n >= self.warmup and self._is_bad(score, z)
                out.add(score, median, median - z * std, median + z * std, bad)
                if bad:
                    state.streak += 1
                    if state.streak < adapt:
                        continue
                    window.clear()
                    ordered.clear()
                state.streak = 0
            window.append(x)
            bisect.insort(ordered, x)
            if len(window) > size:
                ordered.pop(bisect.bisect_left(ordered, window.popleft()))
        return out


@dataclass
class SeasonalState:
    n: int = 0
    level: float = 0.0
    season: list[float] = field(default_factory=list)
    var: float = 0.0
    weight: float = 0.0
    """As EwmaState.weight."""
    streak: int = 0


class Seasonal(Detector):
    """Additive Holt-Winters without trend: expected = level + the season of the point's
    slot in its period. It learns the shape of a day (or an hour) over the first periods;
    until then it is an EWMA of the level."""

    method = "seasonal"
    known = frozenset(
        {"period_s", "slots", "alpha", "gamma", "z", "warmup", "min_std_pct", "adapt_after"}
    )

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.period = _float(self.params, "period_s", 86_400, 1, 1e9)
        self.slots = int(_float(self.params, "slots", 24, 1, 10_000))  # type: ignore[arg-type]
        self.alpha = _float(self.params, "alpha", 0.05, 1e-6, 1.0)
        self.gamma = _float(self.params, "gamma", 0.3, 0.0, 1.0)

    def new_state(self) -> SeasonalState:
        return SeasonalState(season=[0.0] * self.slots)

    def score(
        self, state: SeasonalState, values: Sequence[float], times: Sequence[float]
    ) -> Scores:
        out = Scores()
        a, g, z = self.alpha, self.gamma, self.z
        period, slots = self.period, self.slots
        if len(state.season) != slots:  # a model update changed the slots: relearn the shape
            state.season = [0.0] * slots
        season = state.season
        for x, t in zip(values, times, strict=True):
            slot = int((t % period) / period * slots) % slots  # type: ignore[operator]
            if state.n == 0:
                out.add(0.0, None, None, None, False)
                state.n, state.level, state.var, state.weight = 1, x - season[slot], 0.0, 0.0
                continue
            expected = state.level + season[slot]
            spread = math.sqrt(state.var / state.weight) if state.weight else 0.0
            std = max(spread, self.floor(expected))
            deviation = x - expected
            score = deviation / std
            bad = state.n >= self.warmup and self._is_bad(score, z)
            out.add(score, expected, expected - z * std, expected + z * std, bad)
            if bad:
                state.streak += 1
                if state.streak >= self.adapt_after:
                    state.n, state.level, state.streak = 1, x - season[slot], 0
                    state.var = state.weight = 0.0
                continue
            state.streak = 0
            state.n += 1
            level = state.level
            state.level = a * (x - season[slot]) + (1 - a) * level
            season[slot] = g * (x - state.level) + (1 - g) * season[slot]
            state.var = (1 - a) * state.var + a * deviation * deviation
            state.weight = (1 - a) * state.weight + a
        return out


class Threshold(Detector):
    """Fixed bounds: anomalous above `above` or below `below`. Score: how far past the
    bound, as a fraction of it (0 inside)."""

    method = "threshold"
    known = frozenset({"above", "below"})

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = dict(params or {})
        unknown = set(params) - self.known
        if unknown:
            raise ParameterError(
                f"threshold has no parameter {', '.join(sorted(unknown))}; it takes above, below"
            )
        self.params = params
        self.above = _float(params, "above", None, -1e15, 1e15)
        self.below = _float(params, "below", None, -1e15, 1e15)
        if self.above is None and self.below is None:
            raise ParameterError("threshold needs above or below")
        self.warmup, self.direction = 0, 0

    def new_state(self) -> None:
        return None

    def score(self, state: None, values: Sequence[float], times: Sequence[float]) -> Scores:
        out = Scores()
        above, below = self.above, self.below
        for x in values:
            score = 0.0
            if above is not None and x >= above:
                score = (x - above) / max(abs(above), 1e-9) + 1.0
            elif below is not None and x <= below:
                score = -((below - x) / max(abs(below), 1e-9) + 1.0)
            out.add(score, None, below, above, score != 0.0)
        return out


METHODS: dict[str, type[Detector]] = {d.method: d for d in (Ewma, Mad, Seasonal, Threshold)}


def detector(method: str, params: Mapping[str, Any] | None = None) -> Detector:
    """The detector `method` with `params`; ParameterError names what is wrong."""
    try:
        kind = METHODS[method]
    except KeyError:
        raise ParameterError(
            f"unknown detector method {method!r}; methods: {', '.join(METHODS)}"
        ) from None
    return kind(params)


def parse_spec(text: str) -> Detector:
    """`method:name=value,...` (e.g. `ewma:alpha=0.2,z=4`), as settings spell a detector."""
    method, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"{item!r} is not name=value")
        params[name.strip()] = value.strip()
    return detector(method, params)


# --- the same EWMA, column-wise --------------------------------------------------------

EWMA_STATE_COLUMNS = ("n0", "mean0", "var0", "weight0")


def ewma_frame(points: pl.DataFrame, alpha: float) -> pl.DataFrame:
    """Score many series' runs at once with Ewma's recurrences, column-wise.

    `points`: one row per point, each series' points contiguous and in order: `value`,
    `k` (the point's place in its run: 0, 1, ...), and per row its series' state before
    the run (`n0` >= 1, `mean0`, `var0`, `weight0`) and parameters (`z`, `warmup`, `pct`
    = min_std_pct / 100, `counts`, `direction`). Adds `score`, `expected`, `low`, `high`,
    `anomalous`, and the state after each point (`n1`, `mean1`, `var1`, `weight1`).

    Exact only while no point is anomalous: an anomalous point does not teach the
    baseline, and this pretends it did. Callers keep the result of a series whose run
    has no anomalous point, and score the others with `Ewma.score` (anomalies are rare).
    With no anomaly the two agree to rounding (the recurrences are summed in another
    order), which the tests check.

    One recurrence runs down the whole column (polars' ewm_mean, no per-series window):
    a recurrence y = r*y + a*x restarted at a run's start from s differs from the one
    that ran through from the run before by r^(k+1) * (s - y_before), so each run is
    corrected with the value the column had just before it.
    """
    r = 1.0 - alpha
    k = pl.col("k")
    start = k == 0
    decay = pl.lit(r).pow(k + 1)

    def restarted(x: pl.Expr, seed: str) -> pl.Expr:
        through = x.ewm_mean(alpha=alpha, adjust=False)
        before = through.shift(1).fill_null(x.first())
        at_start = pl.when(start).then(before).otherwise(None).forward_fill()
        return through + decay * (pl.col(seed) - at_start)

    scored = points.with_columns(restarted(pl.col("value"), "mean0").alias("mean1"))
    scored = scored.with_columns(
        pl.when(start).then(pl.col("mean0")).otherwise(pl.col("mean1").shift(1)).alias("expected")
    )
    d2 = (pl.col("value") - pl.col("expected")).pow(2)
    scored = scored.with_columns(
        restarted(d2, "var0").alias("var1"),
        (1.0 - decay * (1.0 - pl.col("weight0"))).alias("weight1"),
    )
    var_prior = pl.when(start).then(pl.col("var0")).otherwise(pl.col("var1").shift(1))
    weight_prior = 1.0 - pl.lit(r).pow(k) * (1.0 - pl.col("weight0"))
    spread = pl.when(weight_prior > 0).then((var_prior / weight_prior).sqrt()).otherwise(0.0)
    m = pl.col("expected")
    floor = pl.col("pct") * m.abs()
    floor = (
        pl.when(pl.col("counts"))
        .then(pl.max_horizontal(floor, m.abs().sqrt(), 1.0))
        .otherwise(floor)
    )
    scored = scored.with_columns(pl.max_horizontal(spread, floor, 1e-9).alias("_std"))
    score = (pl.col("value") - m) / pl.col("_std")
    z = pl.col("z")
    beyond = (
        pl.when(pl.col("direction") == 0)
        .then(score.abs() >= z)
        .when(pl.col("direction") > 0)
        .then(score >= z)
        .otherwise(-score >= z)
    )
    return scored.with_columns(
        score.alias("score"),
        (m - z * pl.col("_std")).alias("low"),
        (m + z * pl.col("_std")).alias("high"),
        ((pl.col("n0") + k >= pl.col("warmup")) & beyond).alias("anomalous"),
        (pl.col("n0") + k + 1).alias("n1"),
    ).drop("_std")
