"""Correcting label shares for classifier error, with a confusion matrix.

A tagger that confuses categories distorts shares: with ``C[i, j] = P(predicted
j | true i)`` (rows of a validation confusion table, "unclear" predictions
dropped and each row renormalised), the expected observed shares are
``q = C^T p`` for true shares ``p``.  :func:`unmix` estimates ``p`` from observed
``q`` on the probability simplex: the exact inverse ``p = C^-T q`` when it lies
on the simplex (then it is the maximum-likelihood estimate), otherwise the
maximum-likelihood estimate by EM (``p_i <- p_i sum_j q_j C_ij / sum_k p_k
C_kj``), which keeps every share in [0, 1] and summing to 1.

Intervals (:class:`CorrectedAttribute`) are posterior-predictive pivot
intervals (:mod:`biaskit.metrics.posterior`) whose draws redraw both the
tagged labels (images as the unit) and the validation set (each true-label row
of the confusion table from its Dirichlet posterior, then a new validation set
of the same size), so they carry the uncertainty of ``C`` too.  The corrected
normalized entropy of each prompt is that of its corrected shares (plug-in);
the corrected HOF of a kind of prompt is the mean of the prompts' expected
heterogeneity ``1 - sum_c p_c ** N`` of their corrected shares.

**The single-category boundary.**  Where every prompt of a kind truly shows
one category, its corrected HOF and mean entropy are exactly 0, and an interval
covers them only when its lower bound is exactly 0.  A posterior interval does
so only when the posterior puts >= 2.5 % on *every* prompt being single-category
at once: with 8-16 prompts that needs a posterior probability of 0.63-0.79 per
prompt, and a prior strong enough for that pulls prompts with a 1-5 % minority to
a single category (measured: the corrected HOF covered 60.6 % with 8 one-gender
prompts through a tagger wrong on 8-12 % of faces).  So the per-kind lower
bound also inverts a test: it is 0 unless a Monte-Carlo test rejects, at level
``1 - confidence``, that every prompt of the kind shows a single category.  The
statistic is the sum over prompts of :func:`single_category_statistic`; its
null distribution is simulated draw by draw with each prompt's counts drawn
from the best-fitting single category's row of ``C*`` (the same matrix draws as
the pivots) and scored with a new validation set drawn from ``C*``, so the
validation set's uncertainty is carried.  Measured size: 5.0 % at level 5 %
(8 prompts of 20 images, 2 categories, known tagger).

**The mean entropy's bias.**  The corrected entropy of a prompt is biased
down (20 faces over 7 categories: a mean 0.84 against a true 0.92), and the
posterior draws of the truth are less even than the truth, so the pivots above
under-state the bias; one prompt's interval is wide enough, the mean's over
8-16 prompts is not.  So the per-kind mean-entropy interval is also extended,
on the side its bias points to, to a basic bootstrap interval at the point
estimate whose pivots are bias-corrected by a double bootstrap
(:func:`point_entropy_pivots`, :func:`bias_aware_interval`).

**The HOF's bias.**  The corrected HOF is biased down far more: a 5 % minority
read through a tagger wrong on 8-12 % of faces is unmixed to a share of 0 a
third of the time, and ``1 - sum_c p_c ** N`` is steep near 0, so a kind's
estimate reads 0.45 for a true 0.64, and the pivot interval's upper bound
missed it a third of the time.  So the per-kind upper bound also inverts a test
along a path of candidate truths (:func:`heterogeneity_path`,
:func:`heterogeneity_upper_bound`): the estimator itself is simulated at each
candidate, bias included.

Examples
--------
>>> C = np.array([[0.9, 0.1], [0.2, 0.8]])
>>> unmix(np.array([0.55, 0.45]), C).round(3).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import gammaln

from biaskit import taxonomy
from biaskit.metrics.entropy import normalized_entropy
from biaskit.metrics.io import BAD_LABEL
from biaskit.metrics.bootstrap import percentile_interval
from biaskit.metrics.posterior import dirichlet_prior, pivot_interval
from biaskit.tables import CONFUSION_COLUMNS, concat_rows, require_columns

CORRECTED_COLUMNS = ("model", "prompt_id", "attribute", "label", "observed_share", "share",
                     "ci_low", "ci_high")
CORRECTED_ENTROPY_COLUMNS = ("model", "prompt_id", "attribute", "observed_entropy", "entropy",
                             "ci_low", "ci_high")
CORRECTED_OVERALL_COLUMNS = ("model", "attribute", "kind", "n_prompts", "observed_hof", "hof",
                             "hof_ci_low", "hof_ci_high", "observed_mean_entropy", "mean_entropy",
                             "mean_entropy_ci_low", "mean_entropy_ci_high", "n_validation",
                             "validation_accuracy")
#: Draws of (prompts x draws x categories) unmixed at once.
MAX_CORRECTED_CELLS = 1 << 20
#: Candidate draws of the tagged-label distribution per kept draw (see :func:`posterior_truth`).
CANDIDATES = 4
#: Prior draws per matrix estimating the slab prior's acceptance.
PRIOR_CANDIDATES = 64
#: Prior probability that a prompt shows a single category (see :func:`posterior_truth`).
ONE_CATEGORY_PRIOR = 0.25
#: Outer draws of the double bootstrap and inner draws per outer one (see :func:`point_entropy_pivots`).
DOUBLE_OUTER, DOUBLE_INNER = 50, 20
#: Weights of the uniform distribution along the corrected HOF's test-inversion path, and the
#: simulated evaluations per weight (see :func:`heterogeneity_upper_bound`): dense near 0, where a
#: few points of minority share move a prompt's expected heterogeneity most.
PATH_WEIGHTS = np.array([0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4,
                         0.5, 0.7, 1.0])
PATH_DRAWS = 128
#: EM tolerance of the draws (an interval endpoint needs far less than the point estimate).
DRAW_TOLERANCE = 1e-6
NO_VALIDATION_ROW = ("confusion: attribute {attribute!r}: no validation example with true label "
                     "{label!r}; assuming it is always predicted correctly")
MAX_EM_ITERATIONS = 20000
EM_TOLERANCE = 1e-10


def confusion_counts(confusion: pd.DataFrame, *, attribute: str, labels) -> np.ndarray:
    """K x K counts (true x predicted) of ``attribute``; "unclear" predictions dropped.

    Raises ``ValueError`` naming the row for a label outside ``labels``.
    """
    require_columns(confusion, CONFUSION_COLUMNS, name="confusion")
    rows = confusion[confusion["attribute"] == attribute]
    counts = np.zeros((len(labels), len(labels)))
    for row, (true, predicted, count) in zip(rows.index, rows[["true", "predicted", "count"]]
                                             .itertuples(index=False)):
        true = taxonomy.normalize_label(attribute, true)
        predicted = taxonomy.normalize_label(attribute, predicted)
        if predicted == taxonomy.UNCLEAR:
            continue
        for label in (true, predicted):
            if label not in labels:
                raise ValueError(BAD_LABEL.format(name="confusion", row=int(row) + 1, label=label,
                                                  attribute=attribute, labels=tuple(labels),
                                                  unclear=taxonomy.UNCLEAR))
        counts[labels.index(true), labels.index(predicted)] += float(count)
    return counts


def row_stochastic(counts: np.ndarray, *, attribute: str = "", labels=()) -> np.ndarray:
    """Rows normalised to sum 1; a row with no example becomes the identity row (warned)."""
    counts = np.array(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    empty = totals[..., 0] == 0
    for i in np.flatnonzero(empty) if counts.ndim == 2 else ():
        warnings.warn(NO_VALIDATION_ROW.format(attribute=attribute, label=labels[i] if len(labels)
                                               else int(i)), stacklevel=3)
    eye = np.broadcast_to(np.eye(counts.shape[-1]), counts.shape)
    return np.where(empty[..., None], eye, counts / np.where(totals > 0, totals, 1.0))


def unmix(observed: np.ndarray, matrix: np.ndarray, *, tolerance: float = EM_TOLERANCE) -> np.ndarray:
    """Estimate true shares ``p`` (..., K) from observed shares (or counts) ``q = C^T p``.

    ``matrix`` is row-stochastic (K, K) or a stack broadcastable against
    ``observed``.  Rows of ``observed`` summing to 0 give NaN.
    """
    q = np.asarray(observed, dtype=np.float64)
    total = q.sum(axis=-1, keepdims=True)
    q = q / np.where(total > 0, total, 1.0)
    # Invert the (few) distinct matrices before broadcasting them to every row.
    inverse = np.linalg.pinv(np.swapaxes(matrix, -1, -2))
    p = np.einsum("...ij,...j->...i", inverse, q)
    matrix = np.broadcast_to(matrix, q.shape[:-1] + matrix.shape[-2:])
    outside = (p.min(axis=-1) < -1e-12) & (total[..., 0] > 0)
    if outside.any():
        start = np.clip(p[outside], 0.0, None)
        start = 0.5 * start / start.sum(axis=-1, keepdims=True) + 0.5 / q.shape[-1]
        p[outside] = _em(q[outside], matrix[outside], start, tolerance=tolerance)
    p = np.clip(p, 0.0, None)
    p = p / np.where(p.sum(axis=-1, keepdims=True) > 0, p.sum(axis=-1, keepdims=True), 1.0)
    return np.where(total > 0, p, np.nan)


def _em(q: np.ndarray, matrix: np.ndarray, p: np.ndarray, *, tolerance: float) -> np.ndarray:
    """EM for mixture weights with known components, rows (N, K); stops rows as they converge."""
    p = p.copy()
    active = np.arange(len(p))
    for _ in range(MAX_EM_ITERATIONS):
        C, current = matrix[active], p[active]
        predicted = np.einsum("nk,nkj->nj", current, C)
        weight = np.where(q[active] > 0, q[active] / np.where(predicted > 0, predicted, 1.0), 0.0)
        updated = current * np.einsum("nij,nj->ni", C, weight)
        updated /= updated.sum(axis=-1, keepdims=True)
        p[active] = updated
        moving = np.abs(updated - current).max(axis=-1) > tolerance
        active = active[moving]
        if not len(active):
            break
    return p


def posterior_matrices(counts: np.ndarray, *, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` row-stochastic matrices (B, K, K): each true-label row drawn from its Dirichlet
    posterior (validation counts + 1/K), so the confusion matrix's own uncertainty is carried."""
    k = len(counts)
    gammas = rng.standard_gamma(np.broadcast_to(counts + dirichlet_prior(k), (n_draws, k, k)))
    return gammas / gammas.sum(axis=-1, keepdims=True)


def redrawn_counts(counts: np.ndarray, matrices: np.ndarray, *, rng) -> np.ndarray:
    """A new validation set (B, K, K) of the same size per draw, tagged by that draw's matrix."""
    totals = np.broadcast_to(counts.sum(axis=1).astype(np.int64)[None, :], matrices.shape[:2])
    return rng.multinomial(totals, matrices).astype(np.float64)


def smoothed(counts: np.ndarray) -> np.ndarray:
    """Rows of validation counts with the prior's 1/K added, as rates: no zero rate, so a single
    tagged label the validation set never showed from a category does not rule the category out."""
    return row_stochastic(counts + dirichlet_prior(counts.shape[-1]))


def posterior_truth(counts: np.ndarray, matrices: np.ndarray, *, rng) -> np.ndarray:
    """Draws (g, B, K) of the true distribution given tagged counts (g, K) and matrices (B, K, K).

    The prior: with probability :data:`ONE_CATEGORY_PRIOR` the prompt shows a
    single category (each equally likely) -- a model that always draws a male
    CEO is a real possibility, and a continuous prior alone never puts the
    truth exactly there, where HOF and entropy are 0 --, else the slab below.
    Slab: the tagged-label distribution is drawn from its Dirichlet posterior,
    ``q* ~ Dirichlet(n + 1/K)``, and mapped to the truth ``p* = C*^-T q*``; a
    draw whose ``p*`` leaves the simplex is impossible under ``C*`` and is
    replaced by the next of :data:`CANDIDATES` candidates (rejection sampling:
    the slab prior on ``p`` is the Dirichlet of ``C^T p``).  Where every
    candidate falls outside, the first one's maximum-likelihood projection
    (:func:`unmix`) stands in.  The posterior odds of a single category ``c``
    against the slab, per draw of ``C*``: ``prior odds x prod_j C*_cj^n_j /
    (B(n + a) / B(a) x P_post(inside) / P_prior(inside))``, the acceptance
    rates estimated from the candidates.
    """
    g, k = counts.shape
    b = len(matrices)
    a = dirichlet_prior(k)
    gammas = rng.standard_gamma(np.broadcast_to((counts + a)[:, None, None, :],
                                                (g, CANDIDATES, b, k)))
    tagged = gammas / gammas.sum(axis=-1, keepdims=True)
    inverse = np.linalg.inv(np.swapaxes(matrices, -1, -2))
    raw = np.einsum("bij,gcbj->gcbi", inverse, tagged)
    valid = (raw >= 0).all(axis=-1)
    first = np.argmax(valid, axis=1)  # (g, B): the first valid candidate
    truth = np.take_along_axis(raw, first[:, None, :, None], axis=1)[:, 0]
    missing = ~valid.any(axis=1)
    if missing.any():
        rows, draws = np.nonzero(missing)
        truth[rows, draws] = unmix(tagged[rows, 0, draws], matrices[draws],
                                   tolerance=DRAW_TOLERANCE)
    truth /= truth.sum(axis=-1, keepdims=True)
    # Log evidence of each single category (g, B, K) and of the slab (g, 1, 1).
    with np.errstate(divide="ignore"):
        single = np.einsum("gj,bcj->gbc", counts, np.log(matrices))
    inside_prior = _prior_acceptance(matrices, a, rng=rng)
    inside_post = np.maximum(valid.mean(axis=(1, 2)), 0.5 / valid[0].size)
    slab = (gammaln(counts + a).sum(axis=1) - gammaln(counts.sum(axis=1) + k * a)
            - k * gammaln(a) + gammaln(k * a) + np.log(inside_post) - np.log(inside_prior))
    log_odds = single - slab[:, None, None] + np.log(ONE_CATEGORY_PRIOR / (1 - ONE_CATEGORY_PRIOR) / k)
    top = np.maximum(log_odds.max(axis=-1, keepdims=True), 0.0)
    weights = np.exp(log_odds - top)
    slab_weight = np.exp(-top[..., 0])
    total = weights.sum(axis=-1) + slab_weight
    u = rng.random((g, b)) * total
    choice = (np.cumsum(weights, axis=-1) < u[..., None]).sum(axis=-1)  # k: the slab
    pure = choice < k
    truth[pure] = np.eye(k)[choice[pure]]
    return truth


def _prior_acceptance(matrices: np.ndarray, a: float, *, rng) -> float:
    """P(C^-T q in the simplex) for q ~ Dirichlet(a), averaged over the matrices."""
    k = matrices.shape[-1]
    q = rng.dirichlet(np.full(k, a), size=(len(matrices), PRIOR_CANDIDATES))
    inverse = np.linalg.inv(np.swapaxes(matrices, -1, -2))
    inside = (np.einsum("bij,bcj->bci", inverse, q) >= 0).all(axis=-1).mean()
    return max(float(inside), 0.5 / q[..., 0].size)


def pure_log_likelihood(counts: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Log-likelihood (..., K) of tagged counts (..., K) if every person's true label were ``c``:
    ``sum_j n_j log C_cj`` (``0 log 0 = 0``), for matrices (K, K) or (..., K, K)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = counts[..., None, :] * np.log(matrices)
    return np.where(counts[..., None, :] > 0, terms, 0.0).sum(axis=-1)


def single_category_statistic(counts: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio (...,) of some true distribution against the best single category.

    ``max(0, l(p~) - max_c l(e_c))`` with ``l(p) = sum_j n_j log (C^T p)_j``
    and ``p~`` the unconstrained inverse ``C^-T n / N`` clipped to the
    simplex (the maximum-likelihood estimate for 2 categories, close to it for
    more; cheaper than EM, and the test's null distribution is simulated with
    the same statistic, so it stays valid).  0 where no label is known.
    """
    total = counts.sum(axis=-1, keepdims=True)
    q = counts / np.where(total > 0, total, 1.0)
    # pinv: a validation set whose rows are alike (a few faces) gives a singular matrix.
    inverse = np.linalg.pinv(np.swapaxes(matrices, -1, -2))
    p = np.clip(np.einsum("...ij,...j->...i", inverse, q), 0.0, None)
    p /= np.where(p.sum(axis=-1, keepdims=True) > 0, p.sum(axis=-1, keepdims=True), 1.0)
    fitted = np.einsum("...i,...ij->...j", p, matrices)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.where(counts > 0, counts * np.log(fitted), 0.0).sum(axis=-1)
    pure = pure_log_likelihood(counts, matrices).max(axis=-1)
    statistic = np.nan_to_num(free - pure, nan=0.0, posinf=np.inf, neginf=0.0)
    return np.where(total[..., 0] > 0, np.maximum(statistic, 0.0), 0.0)


def single_category_pvalue(observed: np.ndarray, null: np.ndarray) -> float:
    """Monte-Carlo p-value of "every prompt shows a single category" (see :class:`CorrectedAttribute`).

    ``observed`` (g,): the prompts' :func:`single_category_statistic`;
    ``null`` (g, B): the same statistic of B simulated evaluations under the
    hypothesis.  The sums over prompts are compared draw by draw: ``(1 + #{T*
    >= T}) / (B + 1)``.
    """
    total = float(np.sum(observed))
    simulated = np.sum(null, axis=0, dtype=np.float64)
    # A relative tolerance: sums of float32 statistics that tie exactly in theory.
    return float((1 + np.sum(simulated >= total - 1e-6 * max(1.0, abs(total))))
                 / (len(simulated) + 1))


def expected_heterogeneity(shares: np.ndarray, n_images) -> np.ndarray:
    """``1 - sum_c p_c ** N``: the probability that N independent persons hold more than one label."""
    return 1.0 - np.power(shares, np.asarray(n_images, dtype=np.float64)[..., None]).sum(axis=-1)


def validation_sources(frame, attribute: str, confusion: pd.DataFrame
                       ) -> tuple[list[np.ndarray], np.ndarray]:
    """The validation counts each model of ``frame`` is corrected with, and its index per model.

    Rows of ``confusion`` with a ``model`` (``confusion_by_model``, from
    ``biaskit annotate import --per-model``) are that model's own validation
    set; the other rows (no ``model`` column, or an empty one) the pooled set,
    used for every model without rows of its own for ``attribute``.

    Returns
    -------
    counts : list of (K, K) arrays
        Distinct validation sets (true x predicted counts).
    source : int array (models,)
        Index into ``counts`` of each model in :attr:`frame.models` order.
    """
    labels = frame.taxonomies[attribute]
    of_model = (confusion["model"].astype(object).where(confusion["model"].notna(), "")
                .astype(str).to_numpy() if "model" in confusion.columns
                else np.full(len(confusion), "", dtype=object))
    own = set(of_model[(of_model != "") & (confusion["attribute"] == attribute).to_numpy()])
    counts, source, index = [], [], {}
    for model in frame.models:
        key = model if model in own else ""
        if key not in index:
            index[key] = len(counts)
            counts.append(confusion_counts(confusion[of_model == key], attribute=attribute,
                                           labels=labels))
        source.append(index[key])
    return counts, np.array(source, dtype=np.int64)


class CorrectedAttribute:
    """Corrected shares, entropy and expected heterogeneity of one attribute, with pivots.

    Point: ``p = unmix(n, C)``.  Pivots (:mod:`biaskit.metrics.posterior`):
    the tagged-label distribution ``q* ~ Dirichlet(n_eff + 1/K)`` and the
    matrix ``C*`` (rows from their Dirichlet posteriors) give ``p* =
    unmix(q*, C*)``; a new tagged sample ``n** ~ Multinomial(N_eff, C*^T p*)``
    and a new validation set tagged by ``C*`` give ``p** = unmix(n**, C**)``;
    the pivot of ``f`` is ``f(p**) - f(p*)``.  ``C*`` is the same for every
    prompt of the models corrected with one validation set in one draw (one
    validation set serves them all); models with their own validation set
    (:func:`validation_sources`) get their own, independent draws.
    """

    def __init__(self, frame, attribute: str, confusion: pd.DataFrame, rng: np.random.Generator):
        labels = frame.taxonomies[attribute]
        self.sources, model_source = validation_sources(frame, attribute, confusion)
        # Per group (model-major, as the frame's groups): the validation set it is corrected with.
        self.source = np.repeat(model_source, len(frame.prompt_ids))
        self.model_counts = [self.sources[s] for s in model_source]
        matrices = np.stack([row_stochastic(c, attribute=attribute, labels=labels)
                             for c in self.sources])
        point = frame.point_metrics(attribute)
        self.observed = point
        self.n_images = frame.design(attribute)[:, -1]
        self.effective = np.rint(frame.effective_counts(attribute))
        scoring = np.stack([smoothed(c) for c in self.sources])[self.source]
        self.single_category = single_category_statistic(self.effective, scoring)
        self.shares = unmix(point.counts, matrices[self.source])
        self.entropy = normalized_entropy(np.nan_to_num(self.shares))
        self.entropy[point.known == 0] = np.nan
        self.heterogeneity = expected_heterogeneity(self.shares, self.n_images)
        # Its own stream: the bias pivots leave the other intervals' draws as they were without them.
        self.bias_rng = np.random.default_rng([frame.seed, 2, list(frame.taxonomies).index(attribute)])
        self.path_rng = np.random.default_rng([frame.seed, 3, list(frame.taxonomies).index(attribute)])
        self.pivots = self._pivots(frame, rng)

    def _pivots(self, frame, rng) -> dict[str, np.ndarray]:
        b = frame.n_boot
        g, k = self.effective.shape
        out = {"shares": np.full((g, k, b), np.nan, dtype=np.float32),
               "entropy": np.full((g, b), np.nan, dtype=np.float32),
               "heterogeneity": np.full((g, b), np.nan, dtype=np.float32),
               "posterior_entropy": np.full((g, b), np.nan, dtype=np.float32),
               "posterior_shares": np.full((g, k, b), np.nan, dtype=np.float32),
               "posterior_heterogeneity": np.full((g, b), np.nan, dtype=np.float32),
               "single_category": np.zeros((g, b), dtype=np.float32),
               "point_entropy": np.full((g, b), np.nan, dtype=np.float32),
               "path_heterogeneity": np.full((g, len(PATH_WEIGHTS)), np.nan),
               # float64: an estimate equal to the point is a tie, which float32 rounding would break
               "path_simulated": np.full((g, len(PATH_WEIGHTS), min(b, PATH_DRAWS)), np.nan)}
        known = (self.effective.sum(axis=1) > 0) & (b > 0)  # no draws (n_boot=0): no intervals
        for s, counts in enumerate(self.sources):
            self._source_pivots(out, counts, np.flatnonzero(known & (self.source == s)), b, rng)
        return out

    def _source_pivots(self, out, counts, rows, b, rng) -> None:
        """Fill ``out``'s rows ``rows``, the groups corrected with validation counts ``counts``."""
        k = len(counts)
        matrices = posterior_matrices(counts, n_draws=b, rng=rng)
        validation = redrawn_counts(counts, matrices, rng=rng)
        refitted = row_stochastic(validation)
        scoring, redrawn_scoring = smoothed(counts), smoothed(validation)
        per_chunk = max(1, MAX_CORRECTED_CELLS // max(1, b * k * CANDIDATES))
        for first in range(0, len(rows), per_chunk):
            chunk = rows[first:first + per_chunk]
            n = self.effective[chunk]
            totals = n.sum(axis=1)
            truth = posterior_truth(n, matrices, rng=rng)
            estimate = retagged_and_corrected(truth, matrices, totals.astype(np.int64)[:, None],
                                              refitted[None], rng=rng)
            images = self.n_images[chunk, None]
            out["shares"][chunk] = np.moveaxis(estimate - truth, 1, -1)
            out["posterior_entropy"][chunk] = normalized_entropy(truth)
            out["posterior_shares"][chunk] = np.moveaxis(truth, 1, -1)
            out["entropy"][chunk] = normalized_entropy(estimate) - out["posterior_entropy"][chunk]
            out["posterior_heterogeneity"][chunk] = expected_heterogeneity(truth, images)
            out["heterogeneity"][chunk] = (expected_heterogeneity(estimate, images)
                                           - out["posterior_heterogeneity"][chunk])
            out["single_category"][chunk] = single_category_null(
                n, scoring, matrices, redrawn_scoring, rng=rng)
            out["point_entropy"][chunk] = point_entropy_pivots(
                self.shares[chunk], totals, matrices, refitted, counts.sum(axis=1), rng=self.bias_rng)
            out["path_heterogeneity"][chunk], out["path_simulated"][chunk] = heterogeneity_path(
                self.shares[chunk], totals, self.n_images[chunk], matrices, refitted, rng=self.path_rng)


def heterogeneity_path(shares, totals, n_images, matrices, refitted, *, rng):
    """The test-inversion path of the corrected HOF (:func:`heterogeneity_upper_bound`).

    Along ``p(w) = (1 - w) p + w u`` (``u`` uniform, ``w`` in :data:`PATH_WEIGHTS`) from each
    prompt's corrected shares ``p`` (g, K): the expected heterogeneity ``h(p(w))`` (g, W), and
    that of :data:`PATH_DRAWS` simulated evaluations at ``p(w)`` (g, W, D) -- tagged through
    draws ``C*`` of ``matrices``, corrected with ``refitted`` as in the pivots.
    """
    shares, missing = _uniform_where_missing(shares)
    k = shares.shape[-1]
    path = (1 - PATH_WEIGHTS[:, None]) * shares[:, None] + PATH_WEIGHTS[:, None] / k  # (g, W, K)
    d = min(PATH_DRAWS, len(matrices))
    totals = np.asarray(totals, dtype=np.int64)[:, None, None]
    simulated = retagged_and_corrected(path[:, :, None], matrices[:d], totals, refitted[:d], rng=rng)
    images = np.asarray(n_images, dtype=np.float64)
    heterogeneity = expected_heterogeneity(path, images[:, None])
    simulated = expected_heterogeneity(simulated, images[:, None, None])
    heterogeneity[missing], simulated[missing] = np.nan, np.nan
    return heterogeneity, simulated


def heterogeneity_upper_bound(point, heterogeneity, simulated, *, confidence) -> float:
    """The corrected HOF's upper bound by inverting a test along a path of truths.

    ``point``: the kind's corrected HOF (the mean over its prompts of ``h(p)``);
    ``heterogeneity`` (g, W) and ``simulated`` (g, W, D) from :func:`heterogeneity_path`.
    Each weight ``w`` is a candidate truth whose HOF is the mean of ``h(p(w))``; it is
    rejected when its simulated HOF estimates fall at or below ``point`` with probability
    ``<= (1 - confidence) / 2``.  The bound is the HOF of the first rejected weight, interpolated
    linearly with the last accepted one, or the path's end (uniform shares) if none is rejected.

    Why: with a 5 % minority read through a tagger wrong on 8-12 % of faces, a prompt's corrected
    minority share is 0 about a third of the time and ``h`` is steep near 0, so the estimate reads
    far low (0.45 for a true 0.64) and the posterior draws, which sit near it, reproduce too
    little of that bias: the pivot intervals' upper bound missed a third of the time.  The test
    simulates the estimator itself at candidate truths, so the bias is in its null distribution.
    """
    finite = np.isfinite(heterogeneity).all(axis=1)
    if not finite.any():
        return np.nan
    truth = heterogeneity[finite].mean(axis=0)
    estimates = simulated[finite].mean(axis=0, dtype=np.float64)  # (W, D)
    # At or below: ties (few categories, few images) count against rejecting, the cautious side.
    below = np.minimum.accumulate((estimates <= point + 1e-12).mean(axis=-1))
    alpha = (1 - confidence) / 2
    rejected = np.flatnonzero(below <= alpha)
    if not len(rejected):
        return float(truth[-1])
    i = rejected[0]
    if i == 0:
        return float(truth[0])
    step = (below[i - 1] - alpha) / (below[i - 1] - below[i])
    return float(truth[i - 1] + step * (truth[i] - truth[i - 1]))


def point_entropy_pivots(shares, totals, matrices, refitted, validation_totals, *, rng
                         ) -> np.ndarray:
    """(g, B) ``H(p**) - H(p)`` of a parametric bootstrap at the point estimate ``p`` (g, K),
    shifted by the double bootstrap's bias-of-bias.

    ``n** ~ Multinomial(N, C*^T p)`` through each draw ``C*`` of ``matrices``, corrected with
    ``refitted`` (the rates of a validation set redrawn from ``C*``), gives ``p**``; the mean of
    ``H(p**) - H(p)`` is the bias ``b(p)`` at ``p``.  The corrected entropy's bias grows as
    the distribution evens out, and ``p`` reads less even than the truth, so ``b(p)`` understates
    it; the iterated bootstrap (Hall 1992) extrapolates ``b(truth) ~ 2 b(p) - E b(p**)``, with
    ``E b(p**)`` from :func:`inner_bias`.  The pivots are shifted by ``b(p) - E b(p**)``.
    """
    # A prompt without a point estimate (a degenerate unmixing) gets no pivots.
    shares, missing = _uniform_where_missing(shares)
    estimate = retagged_and_corrected(shares[:, None], matrices, np.asarray(totals, dtype=np.int64)[:, None],
                                      refitted[None], rng=rng)
    pivots = normalized_entropy(estimate) - normalized_entropy(shares)[:, None]
    pivots[missing] = np.nan
    outer = min(DOUBLE_OUTER, pivots.shape[1])
    inner = inner_bias(estimate[:, :outer], totals, refitted[:outer], validation_totals, rng=rng)
    return pivots + (_finite_mean(pivots, axis=1) - inner)[:, None]


def inner_bias(estimate, totals, matrices, validation_totals, *, rng) -> np.ndarray:
    """(g,) the mean over outer draws ``m`` of ``b(p**_m)``: the bias at ``p**_m`` (g, M, K) with
    ``matrices[m]`` as the tagger, from :data:`DOUBLE_INNER` draws each (a new tagged sample and
    validation set, re-corrected)."""
    m, k = matrices.shape[0], matrices.shape[-1]
    totals_v = np.broadcast_to(np.asarray(validation_totals, dtype=np.int64), (m, DOUBLE_INNER, k))
    validation = rng.multinomial(totals_v, np.broadcast_to(matrices[:, None], (m, DOUBLE_INNER, k, k)))
    refitted = row_stochastic(validation.astype(np.float64))
    # An outer draw with no estimate (a singular redrawn validation set) is left out.
    estimate, missing = _uniform_where_missing(estimate)
    totals = np.broadcast_to(np.asarray(totals, dtype=np.int64)[:, None, None],
                             estimate.shape[:2] + (DOUBLE_INNER,))
    again = retagged_and_corrected(estimate[:, :, None], matrices[:, None], totals, refitted[None], rng=rng)
    bias = normalized_entropy(again) - normalized_entropy(estimate)[..., None]
    bias[missing] = np.nan
    return _finite_mean(bias, axis=(1, 2))


def retagged_and_corrected(shares, matrices, totals, refitted, *, rng) -> np.ndarray:
    """``unmix(n**, refitted)`` for ``n** ~ Multinomial(totals, C^T p)``: a new tagged sample
    of true shares ``shares`` (..., K) through the taggers ``matrices`` (..., K, K), corrected
    with the rates ``refitted``; the shapes broadcast (the pivots' one step, used three ways)."""
    expected = np.einsum("...i,...ij->...j", shares, matrices)
    expected /= expected.sum(axis=-1, keepdims=True)
    redrawn = rng.multinomial(totals, expected)
    return unmix(redrawn, refitted, tolerance=DRAW_TOLERANCE)


def _estimated(shares) -> np.ndarray:
    """Where ``shares`` (..., K) hold an estimate (a degenerate unmixing gives NaN or zeros)."""
    return np.isfinite(shares).all(axis=-1) & (shares.sum(axis=-1) > 0)


def _uniform_where_missing(shares) -> tuple[np.ndarray, np.ndarray]:
    """``shares`` (..., K) with uniform shares where they hold no estimate (:func:`_estimated`), so
    they can be drawn from, and where that was: the caller blanks those results."""
    missing = ~_estimated(shares)
    return np.where(missing[..., None], 1.0 / shares.shape[-1], shares), missing


def _finite_mean(values, *, axis) -> np.ndarray:
    """The mean of the finite ``values`` along ``axis``; NaN where none is (no warning)."""
    finite = np.isfinite(values)
    counted = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def bias_aware_interval(point, interval, pivots, *, confidence):
    """``interval`` extended, on the side the bias points to, to the basic bootstrap interval of
    ``pivots`` (:func:`point_entropy_pivots`, averaged over prompts): a mean pivot below 0 (the
    estimate reads low) raises the upper bound to ``point - q_lo``, above 0 lowers the lower
    bound to ``point - q_hi``."""
    low, high = interval
    if not np.isfinite(pivots).any():
        return low, high
    basic_low, basic_high = pivot_interval(point, pivots, confidence=confidence)
    bias = np.nanmean(pivots)
    if bias < 0:
        high = np.fmax(high, basic_high)
    elif bias > 0:
        low = np.fmin(low, basic_low)
    return low, high


def single_category_null(counts, scoring, matrices, redrawn_scoring, *, rng) -> np.ndarray:
    """(g, B) :func:`single_category_statistic` of tagged counts simulated with every person of a
    prompt in its best-fitting single category (under ``scoring``, the :func:`smoothed`
    validation rates): drawn through each draw ``C*`` of ``matrices`` and scored with
    ``redrawn_scoring``, the smoothed rates of a validation set redrawn from ``C*`` (the
    validation set's uncertainty, as in the pivots)."""
    best = pure_log_likelihood(counts, scoring).argmax(axis=-1)
    rows = np.swapaxes(matrices[:, best], 0, 1)  # (g, B, K): row best[g] of each C*
    simulated = rng.multinomial(counts.sum(axis=1).astype(np.int64)[:, None], rows)
    return single_category_statistic(simulated.astype(np.float64), redrawn_scoring[None])


def corrected_tables(frame, confusion: pd.DataFrame
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Corrected shares, entropy and per-kind HOF / mean entropy (attributes in ``confusion`` only).

    Returns
    -------
    shares : DataFrame
        model, prompt_id, attribute, label, observed_share (as in the
        distribution table), share (corrected), ci_low, ci_high.
    entropy : DataFrame
        model, prompt_id, attribute, observed_entropy (plug-in, of the
        observed shares), entropy (of the corrected shares), ci_low, ci_high.
    overall : DataFrame
        :data:`CORRECTED_OVERALL_COLUMNS`: per model, attribute and kind, the
        observed HOF and mean entropy beside the corrected ones -- the
        corrected HOF is the mean over prompts of the expected heterogeneity
        ``1 - sum_c p_c ** N`` of the corrected shares (N: the prompt's images
        with a known label) -- with intervals, the validation set's size and
        the tagger's accuracy on it.
    """
    rng = np.random.default_rng([frame.seed, 1])
    parts = [_corrected_attribute(frame, attribute, confusion, rng) for attribute in frame.attributes
             if (confusion["attribute"] == attribute).any()]
    return (concat_rows([part[0] for part in parts], CORRECTED_COLUMNS),
            concat_rows([part[1] for part in parts], CORRECTED_ENTROPY_COLUMNS),
            concat_rows([part[2] for part in parts], CORRECTED_OVERALL_COLUMNS))


def _corrected_attribute(frame, attribute: str, confusion: pd.DataFrame, rng: np.random.Generator):
    """:func:`corrected_tables`' three parts for one attribute."""
    labels = frame.taxonomies[attribute]
    fit = CorrectedAttribute(frame, attribute, confusion, rng)
    k = len(labels)
    low, high = _hull(frame, frame.pivot_interval(fit.shares, fit.pivots["shares"]),
                      fit.pivots["posterior_shares"])
    corrected_shares = pd.DataFrame({
        **frame.index_columns(repeat=k), "attribute": attribute,
        "label": np.tile(np.array(labels, dtype=object), len(fit.shares)),
        "observed_share": fit.observed.shares.ravel(), "share": fit.shares.ravel(),
        "ci_low": low.ravel(), "ci_high": high.ravel()})
    low, high = _hull(frame, frame.pivot_interval(fit.entropy, fit.pivots["entropy"]),
                      fit.pivots["posterior_entropy"])
    corrected_entropy = pd.DataFrame({
        **frame.index_columns(), "attribute": attribute,
        "observed_entropy": normalized_entropy(fit.observed.counts), "entropy": fit.entropy,
        "ci_low": low, "ci_high": high})
    return corrected_shares, corrected_entropy, _corrected_overall(frame, attribute, fit)


def _hull(frame, interval, posterior_draws):
    """The hull of a pivot interval and the posterior (credible) interval of the same quantity:
    as for the observed entropy (:func:`biaskit.metrics.posterior.entropy_interval`), the
    credible interval covers where the pivot's reflection misleads (steep or bounded regions)."""
    credible = percentile_interval(posterior_draws, confidence=frame.confidence)
    return np.fmin(interval[0], credible[0]), np.fmax(interval[1], credible[1])


def _corrected_overall(frame, attribute: str, fit: CorrectedAttribute) -> pd.DataFrame:
    n_prompts = len(frame.prompt_ids)
    rows = []
    for m, model in enumerate(frame.models):
        groups = slice(m * n_prompts, (m + 1) * n_prompts)
        counts = fit.model_counts[m]
        accuracy = float(np.trace(counts) / counts.sum()) if counts.sum() else np.nan
        known = fit.observed.known[groups] > 0
        for kind in frame.overall_kinds:
            used = known & frame.kind_masks[kind]
            # every prompt single-category (HOF = entropy = 0) not rejected: both lower bounds 0
            single = bool(frame.n_boot and used.any() and single_category_pvalue(
                fit.single_category[groups][used],
                fit.pivots["single_category"][groups][used]) > 1 - frame.confidence)
            observed = frame.aggregate(model=model, attribute=attribute, kind=kind)
            row = {"model": model, "attribute": attribute, "kind": kind,
                   "n_prompts": int(used.sum()), "observed_hof": observed["hof"],
                   "observed_mean_entropy": observed["mean_entropy"],
                   "n_validation": int(counts.sum()), "validation_accuracy": accuracy}
            for metric, name in (("hof", "heterogeneity"), ("mean_entropy", "entropy")):
                point = getattr(fit, name)[groups][used]
                value = float(point.mean()) if used.any() else np.nan
                pivots, posterior = (
                    (fit.pivots[key][groups][used].mean(axis=0, dtype=np.float64) if used.any()
                     else np.full(frame.n_boot, np.nan)) for key in (name, f"posterior_{name}"))
                low, high = _hull(frame, frame.pivot_interval(value, pivots), posterior)
                if metric == "hof" and frame.n_boot and used.any():
                    high = np.fmax(high, heterogeneity_upper_bound(
                        value, fit.pivots["path_heterogeneity"][groups][used],
                        fit.pivots["path_simulated"][groups][used], confidence=frame.confidence))
                if metric == "mean_entropy" and used.any():
                    low, high = bias_aware_interval(
                        value, (low, high), fit.pivots["point_entropy"][groups][used].mean(
                            axis=0, dtype=np.float64), confidence=frame.confidence)
                if single:
                    low = 0.0
                row.update({metric: value, f"{metric}_ci_low": float(low),
                            f"{metric}_ci_high": float(high)})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(CORRECTED_OVERALL_COLUMNS))
