"""The registry's own false-match curve, and the thresholds it allows.

A face model's published figures come from other people's faces (dlib's from LFW, mostly
Western; on East-Asian faces its false-match rate is 250-320 times the LFW fit), so a
registry measures how close the faces of *different* people come on its own data:

  - non-mated distances between the enrolled templates of different citizens (all pairs,
    or a uniform sample for a large registry, computed in blocks: memory stays bounded);
  - operational non-mated distances reported by devices: each session carries the
    distances to its nearest *other* citizens, so camera frames count too. A session is
    gallery_size - 1 comparisons of which we know every distance below its last candidate
    (the list is censored there, so it only counts up to that distance).

FMR(t) = matches / comparisons, with a one-sided 95 % Clopper-Pearson upper bound. Below
the distances where the data holds matches, the bound of each measured point is carried
down the tail with a slope no steeper than the model's prior allows (the shape of the tail
from the prior, its level from the registry): a registry of 50 citizens has ~1,200 pairs and cannot by
itself show an FMR of 1e-4. Device reports can only raise the bound that the enrolled
templates alone give (closer strangers on camera tighten it; many far ones do not loosen it).
Where the registry's pairs are too few to bound the tail as tightly as the prior (measured
with bench.prior on East-Asian and mixed faces, recognition/models/priors/), the prior bounds it, raised wherever the
registry's own matches prove its faces closer (_within_prior). The threshold for n citizens
is the largest t with n x FMR_upper(t) <= target FPIR, never looser than the admin's maximum.
A registry with fewer than MIN_PEOPLE measured people falls back to the prior, with a note.

Every distance here is one face model's (recognition/models): its grid, its prior, the
steepest tail slope its distances allow. A curve names the model it was measured on.

Pure functions over numpy arrays; the server stores and shows what `measure` returns.
The duplicate-identity check can ask `fmr_at(curve, t)` for the measured FMR at a distance.
"""
import math
from dataclasses import dataclass, field, replace

import numpy as np


def N_(text):
    """Marks a note the console shows translated (server/i18n.N_; pybabel finds it by name)."""
    return text


MIN_PEOPLE = 10          # fewer distinct people measured: the prior decides
MAX_PAIRS = 3_000_000    # more template pairs than this: a uniform sample of this many
BLOCK = 1024             # rows per block of the all-pairs pass (BLOCK x n floats at a time)
CONFIDENCE = 0.95
ONE_TO_ONE_FMR = 0.0001  # ID-number check: one false accept in ten thousand impostor tries
TAIL = 0.01             # FMR bounds up to this are the tail a straight log-line describes


# --- the bound ----------------------------------------------------------------------------

def _log_binom_pmf(i, n, p):
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p))


def _binom_cdf(k, n, p):
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (k small: the tail we care for)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0 if k < n else 1.0
    logs = [_log_binom_pmf(i, n, p) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def upper_bound(matches, comparisons, confidence=CONFIDENCE):
    """One-sided Clopper-Pearson upper bound on a rate seen `matches` times in `comparisons`:
    the p at which seeing so few matches has probability 1 - confidence (bisection on the
    binomial tail, no scipy). Above 300 matches the Wilson bound (close to exact there)."""
    if comparisons <= 0:
        return 1.0
    k, n = int(matches), int(comparisons)
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    if k > 300:
        return _wilson(k, n, confidence)[1]
    low, high = k / n, 1.0
    for _ in range(80):
        mid = (low + high) / 2
        if _binom_cdf(k, n, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def _wilson(k, n, confidence):
    """(lower, upper) one-sided Wilson bounds: close to exact above 300 matches, where the
    exact bisection would sum every match's binomial term 80 times a point."""
    z = 1.6448536269514722 if confidence == 0.95 else _z(confidence)
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def _z(confidence):
    """Normal quantile by bisection on erf (only for confidences other than 95 %)."""
    low, high = 0.0, 10.0
    for _ in range(80):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < confidence:
            low = mid
        else:
            high = mid
    return high


# --- non-mated distances ------------------------------------------------------------------

def enrolled_non_mated(model, owners, matrix, exclude=(), max_pairs=MAX_PAIRS, block=BLOCK, seed=0,
                       rows=None):
    """Distances between templates of *different* citizens, as float32.

    owners: one citizen id per template; matrix: the templates (n x model.dims), or with
    `rows` a larger array of which rows[i] is the template of owners[i] (a server's face index:
    no copy of a million templates). Citizens in `exclude` (possible duplicates) are left out.
    All pairs when there are at most max_pairs, else a uniform sample of max_pairs pairs (the
    same one for the same templates in the same order); either way computed block by block.
    """
    owners = np.asarray(list(owners)).reshape(-1)
    if len(owners) < 2:
        return np.empty(0, np.float32)
    matrix = np.asarray(matrix, dtype=np.float32).reshape(-1, model.dims)
    rows = np.arange(len(owners)) if rows is None else np.asarray(rows)
    if len(exclude):
        keep = ~np.isin(owners, np.asarray(list(exclude), dtype=owners.dtype))
        owners, rows = owners[keep], rows[keep]
    _, codes = np.unique(owners, return_inverse=True)
    n = len(codes)
    if n < 2:
        return np.empty(0, np.float32)
    if n * (n - 1) // 2 <= max_pairs:
        return _all_pairs(model, codes, matrix[rows], block)
    return _sampled_pairs(model, codes, matrix, rows, max_pairs, block, seed)


def _all_pairs(model, codes, matrix, block):
    out = []
    for start in range(0, len(codes), block):
        rows = matrix[start:start + block]
        d = model.pairwise(rows, matrix[start:])
        i, j = np.triu_indices(len(rows), k=1, m=d.shape[1])
        different = codes[start + i] != codes[start + j]
        out.append(d[i[different], j[different]])
    return np.concatenate(out).astype(np.float32) if out else np.empty(0, np.float32)


def _sampled_pairs(model, codes, matrix, rows, max_pairs, block, seed):
    rng = np.random.default_rng(seed)
    n, out, total = len(codes), [], 0
    while total < max_pairs:
        size = min(block * 64, max_pairs - total)   # 64k pairs x 192 floats: ~150 MB at peak
        i, j = rng.integers(0, n, size, dtype=np.int32), rng.integers(0, n, size, dtype=np.int32)
        different = codes[i] != codes[j]
        i, j = i[different], j[different]
        out.append(model.rowwise(matrix[rows[i]], matrix[rows[j]]).astype(np.float32))
        total += int(different.sum())
    return np.concatenate(out)


def finite(values):
    """Only the finite, non-negative distances (a device may send NaN, inf or junk)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values[np.isfinite(values) & (values >= 0)]


# --- the curve ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Operational:
    """Non-mated distances devices reported: per session the distances to its nearest other
    citizens (closest first) and how many comparisons the session made (gallery size - 1)."""
    sessions: tuple = ()          # ((distances...), comparisons, full) per session

    @property
    def censor(self):
        """Distances up to which every reported list is complete."""
        ends = [d[-1] for d, _, full in self.sessions if full and d]
        return min(ends) if ends else 2.0


@dataclass(frozen=True)
class Curve:
    """A false-match curve over its model's grid: matches and comparisons at each t, and its bound."""
    source: str                   # "measured" or "prior"
    model: str                    # the face model's id: its distances, no other's
    grid: tuple
    matches: tuple = ()
    comparisons: tuple = ()
    fmr: tuple = ()
    fmr_upper: tuple = ()
    people: int = 0
    pairs: int = 0                # enrolment pairs measured
    operational: int = 0          # comparisons from device sessions
    slope: float = 0.0
    notes: tuple = ()             # (English template, {field: value}) pairs, for a page to translate
    histogram: dict = field(default_factory=dict)

    def as_dict(self):
        return {"source": self.source, "model": self.model, "people": self.people, "pairs": self.pairs,
                "operational_comparisons": self.operational, "tail_slope": round(self.slope, 2),
                "notes": [text.format(**args) for text, args in self.notes],
                "note_parts": [[text, args] for text, args in self.notes],
                "curve": [{"t": t, "matches": int(m), "comparisons": int(c), "fmr": f, "fmr_upper": u}
                          for t, m, c, f, u in zip(self.grid, self.matches, self.comparisons,
                                                    self.fmr, self.fmr_upper)],
                "histogram": self.histogram}


def prior_curve(model, notes=(), rates=None):
    """The curve of a registry too small to measure: the model's prior (at each distance the
    most cautious of the bounds measured on East-Asian and on mixed faces, and of a published
    fit where the model has one). dlib's LFW fit alone allowed 0.50 for 16 citizens, where
    East-Asian strangers match 5 % of citizens; a small Chinese registry greeted 4 of 6
    strangers by someone's name. rates: another prior over the model's grid (the bench's
    --prior, a prior measured on faces the registry does not hold)."""
    rates = tuple(model.prior_fmr() if rates is None else rates)
    grid = model.grid
    if len(rates) != len(grid):
        raise ValueError(f"a prior of {len(rates)} values; the {model.name} grid has {len(grid)}")
    return Curve("prior", model.id, grid, matches=(0,) * len(grid), comparisons=(0,) * len(grid),
                 fmr=rates, fmr_upper=rates, slope=model.max_tail_slope, notes=tuple(notes))


def measure(model, enrolled, people, operational=Operational(), confidence=CONFIDENCE, prior=None):
    """The registry's curve from enrolment non-mated distances (of `people` distinct
    citizens) and device-reported ones, all of one model; its prior when too few people were
    measured. prior: a Curve to use instead of the model's (the bench's --prior)."""
    prior = prior or prior_curve(model)
    enrolled = finite(enrolled)
    notes = []
    if people < MIN_PEOPLE or not enrolled.size:
        notes.append((N_("Fewer than {min} citizens with a face to compare ({people}): the prior decides"
                      " (the most cautious of the bounds measured on East-Asian and on mixed"
                      " faces)."), {"min": MIN_PEOPLE, "people": people}))
        return replace(prior, notes=tuple(notes), people=people)
    grid = model.grid
    ordered = np.sort(enrolled)
    ops = [(finite(d), c, full) for d, c, full in operational.sessions if c > 0]
    ops_sorted = np.sort(np.concatenate([d for d, _, _ in ops])) if ops else np.empty(0)
    ops_comparisons = int(sum(c for _, c, _ in ops))
    censor = Operational(tuple((tuple(d), c, full) for d, c, full in ops)).censor
    if ops and censor < grid[-1]:
        notes.append((N_("Device reports count only up to distance {censor} (their candidate lists end"
                      " there)."), {"censor": round(censor, 3)}))
    alone = [int(np.searchsorted(ordered, t, side="right")) for t in grid]
    alone_counts = (alone, [int(ordered.size)] * len(grid))
    matches, comparisons = list(alone), list(alone_counts[1])
    for i, t in enumerate(grid):
        if ops and t <= censor:
            matches[i] += int(np.searchsorted(ops_sorted, t, side="right"))
            comparisons[i] += ops_comparisons
    rates = [min(1.0, k / n) for k, n in zip(matches, comparisons)]   # a device may claim k > n
    bound, slope = _bound(model, matches, comparisons, confidence)
    if ops:
        # Device reports may tighten the curve, never loosen it: a session is a device's word,
        # and many sessions of far-away candidates would otherwise buy a looser threshold.
        bound = [max(a, b) for a, b in zip(bound, _bound(model, *alone_counts, confidence)[0])]
    # the scale from the enrolled pairs alone too: device reports may raise it, never lower it
    bound, scale = _within_prior(prior.fmr_upper, bound, [(matches, comparisons), alone_counts],
                                 confidence)
    if scale is not None:
        notes.append((N_("Where this registry has too few pairs to show a rate this low, the prior"
                      " bounds it."), {}) if scale < 1.05 else
                     (N_("Where this registry has too few pairs to show a rate this low, the prior"
                      " bounds it, raised {scale}-fold where this registry's faces came closer"
                      " than the prior's."), {"scale": round(scale, 1)}))
    return Curve("measured", model.id, grid, tuple(matches), tuple(comparisons), tuple(rates),
                 tuple(bound), people=people, pairs=int(ordered.size), operational=ops_comparisons,
                 slope=slope, notes=tuple(notes))


def _bound(model, matches, comparisons, confidence):
    """(FMR_upper over the model's grid, tail slope) of the counts."""
    direct = [upper_bound(k, n, confidence) for k, n in zip(matches, comparisons)]
    slope = tail_slope(model, matches, comparisons)
    return _carry_down(model.grid, matches, direct, slope), slope


def lower_bound(matches, comparisons, confidence=CONFIDENCE):
    """One-sided Clopper-Pearson lower bound: the rate below which seeing this many matches
    has probability 1 - confidence. No match: 0 (nothing shows the rate is above zero)."""
    k, n = int(matches), int(comparisons)
    if k <= 0 or n <= 0:
        return 0.0
    k = min(k, n)
    alpha = 1.0 - confidence
    if k > 300:
        return _wilson(k, n, confidence)[0]
    low, high = 0.0, k / n
    for _ in range(80):
        mid = (low + high) / 2
        if 1.0 - _binom_cdf(k - 1, n, mid) < alpha:   # P(X >= k) too small: the rate is higher
            low = mid
        else:
            high = mid
    return low


def _within_prior(prior, bound, counts, confidence):
    """(FMR_upper, scale): the registry's bound, or the prior's scaled to the registry where
    the prior is the tighter of the two.

    A registry of a few hundred citizens has too few pairs to show by itself the FMR of 1e-4
    a 1:N search needs, so its own bound alone kept every small registry at the 0.30 floor.
    The prior (measured on 43,294 pairs of East-Asian faces) says more about that tail, but
    only as long as this registry's faces are not closer than the prior's: wherever the
    registry's matches prove a rate above the prior (the lower 95 % bound over the prior, in
    the tail), the prior is raised by the largest such factor at every distance. The
    registry's own bound still wins wherever it is tighter (a large registry measures its own
    tail). prior: its FMR bounds over the grid. counts: (matches, comparisons), pooled with device reports and from the
    enrolled pairs alone; the factor is the larger of the two, so far-away device reports,
    which add comparisons and no matches, cannot lower it."""
    scale, measured = 1.0, [0.0] * len(bound)
    for matches, comparisons in counts:
        for i, (k, n, p) in enumerate(zip(matches, comparisons, prior)):
            if 0 < p <= TAIL:
                scale = max(scale, lower_bound(k, n, confidence) / p)
            measured[i] = max(measured[i], min(1.0, k / n) if n else 0.0)
    # an upper bound is never under a rate the registry measured
    combined = [max(rate, min(own, min(1.0, p * scale)))
                for own, p, rate in zip(bound, prior, measured)]
    for i in range(1, len(combined)):
        combined[i] = max(combined[i], combined[i - 1])
    used = any(c < own for c, own in zip(combined, bound))
    return combined, (scale if used else None)


def tail_slope(model, matches, comparisons, low=1e-4, high=1e-2):
    """Decades of FMR per unit of distance in the measured lower tail (least squares over
    points with FMR between low and high and at least 5 matches), never steeper than the
    model allows (its prior's slope): a shallower slope bounds the unmeasured tail more
    cautiously. Never under 1/4.2 of that either (dlib: 4.0): a flat line would say nothing."""
    cap = model.max_tail_slope
    xs, ys = [], []
    for t, k, n in zip(model.grid, matches, comparisons):
        if k >= 5 and n and low <= k / n <= high:
            xs.append(t)
            ys.append(math.log10(k / n))
    if len(xs) < 3:
        return cap
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    fitted = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else cap
    return max(cap / 4.2, min(cap, fitted))


def _carry_down(grid, matches, direct, slope):
    """FMR_upper(t): the smallest of the direct bound at t and, for every measured point
    a >= t in the tail (bound <= TAIL), its bound carried down by `slope`; then made
    non-decreasing in t.
    (A point with no match still bounds the rate, at 3/comparisons or so, and carries down.)"""
    bound = list(direct)
    for a, ta in enumerate(grid):
        if direct[a] > TAIL:
            break   # the log-linear tail model says nothing about the bulk of the distribution
        for i in range(a):
            bound[i] = min(bound[i], direct[a] * 10 ** (-slope * (ta - grid[i])))
    for i in range(1, len(bound)):
        bound[i] = max(bound[i], bound[i - 1])
    return bound


def fmr_at(curve, t):
    """(FMR, 95 % upper bound) of the curve at distance t (the grid point at or above t).
    For the duplicate-identity check: how often two different people come this close."""
    for g, rate, upper in zip(curve.grid, curve.fmr, curve.fmr_upper):
        if g >= t - 1e-9:
            return rate, upper
    return curve.fmr[-1], curve.fmr_upper[-1]


def threshold_for(curve, gallery_size, target_fpir, max_threshold, min_threshold):
    """The largest grid t with gallery_size x FMR_upper(t) <= target_fpir, within
    [min_threshold, max_threshold] (the model's floor, the admin's ceiling): a stranger has
    gallery_size chances to resemble someone."""
    n = max(1, int(gallery_size))
    best = None
    for t, upper in zip(curve.grid, curve.fmr_upper):
        if t > max_threshold + 1e-9:
            break
        if n * upper <= target_fpir:
            best = t
    if best is None:
        return min_threshold
    return round(max(min_threshold, min(max_threshold, best)), 3)


def one_to_one_threshold(curve, target_fmr, max_threshold, min_threshold):
    """The threshold when a visitor has said who they are (typed an ID number): one
    comparison, so the largest t with FMR_upper(t) <= target_fmr. Looser than any 1:N
    threshold, and on close faces still measured, not assumed."""
    return threshold_for(curve, 1, target_fmr, max_threshold, min_threshold)


def duplicate_threshold(curve, enrolled, budget, greeting, ceiling):
    """The fraud check's distance: the largest grid t whose expected false flags per new
    record, enrolled x FMR(t), stay within the review budget; never stricter than the
    greeting threshold, never looser than the model's ceiling. The point estimate, not its
    upper bound: a false flag costs an admin a look, a missed duplicate a second identity."""
    chosen = greeting
    for t, rate in zip(curve.grid, curve.fmr):
        if t > ceiling:
            break
        if max(enrolled, 1) * rate <= budget:
            chosen = max(chosen, t)
    return round(min(ceiling, chosen), 4)


def expected_fpir(curve, gallery_size, threshold):
    """n x FMR_upper(t): the share of strangers the threshold alone may name (upper bound)."""
    return min(1.0, max(1, int(gallery_size)) * fmr_at(curve, threshold)[1])


def histogram(values, bins):
    """Counts of finite values per bin (the last bin also holds everything beyond it)."""
    values = np.clip(finite(values), bins[0], bins[-1] - 1e-9)
    counts, _ = np.histogram(values, bins=np.asarray(bins))
    return [int(c) for c in counts]


def share_within(values, t):
    """Share of the finite values at or under t (genuine distances: the share greeted)."""
    values = finite(values)
    return float((values <= t).mean()) if values.size else None
