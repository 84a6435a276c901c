"""The correction's random draws and per-kind rows against independent computations.

The spike-and-slab posterior of :func:`posterior_truth` against Bayes' rule worked out for two
categories with scipy (the slab's evidence by the Beta integral over the region the tagger can
produce), the slab prior's acceptance against the Beta distribution's mass of that region, and
``corrected_overall``'s rows against means, counts and intervals computed by hand from the
per-prompt tables and the fit's pivots.  Written to kill the mutants mutmut left alive
(issue 15); each test names what it pins.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import betaln

from biaskit.metrics import BiasFrame
from biaskit.metrics.correction import (
    ONE_CATEGORY_PRIOR, CorrectedAttribute, _corrected_overall, _hull, _prior_acceptance,
    heterogeneity_upper_bound, point_entropy_pivots, posterior_matrices, posterior_truth,
    redrawn_counts, row_stochastic, validation_sources)
from biaskit.suite import suite_from_dict

A = 0.5  # the Dirichlet prior's pseudo-count 1 / K for two categories
# Two taggers (rows true Male, Female): with 9 of 9 tagged Male, the first makes "all Male"
# likelier than the slab, the second leaves "all Female" plausible too (it calls women Male).
TAGGERS = (np.array([[0.55, 0.45], [0.05, 0.95]]), np.array([[0.8, 0.2], [0.7, 0.3]]))
COUNTS = np.array([[9.0, 0.0], [3.0, 2.0], [6.0, 6.0]])
PER_TAGGER = 12000


def _bayes(n, taggers):
    """Per tagger: P(all of category c | n) (2,) and the slab's posterior mean of p_Male.

    Spike: ``w / 2`` on each one-category truth, likelihood ``prod_j C_cj ** n_j``.  Slab: the
    tagged distribution ``t = q_Male ~ Beta(a, a)`` restricted to ``[C_FM, C_MM]`` (where
    ``p = C^-T q`` is a distribution), evidence ``int Beta(t; a, a) t^n0 (1-t)^n1 / P_prior(in)``.
    The acceptance rates are those of all the draws together (as in the code, which estimates
    them over every draw of the matrix), so they are averaged over the taggers here.  A slab
    draw whose 4 candidates all fall outside is projected to the nearer edge (p_Male = 0 or 1).
    """
    post, prior = stats.beta(n[0] + A, n[1] + A), stats.beta(A, A)
    inside = [post.cdf(C[0, 0]) - post.cdf(C[1, 0]) for C in taggers]
    inside_prior = np.mean([prior.cdf(C[0, 0]) - prior.cdf(C[1, 0]) for C in taggers])
    evidence = np.exp(betaln(n[0] + A, n[1] + A) - betaln(A, A)) * np.mean(inside) / inside_prior
    out = []
    for C, p_in in zip(taggers, inside):
        low, high = C[1, 0], C[0, 0]
        spikes = ONE_CATEGORY_PRIOR / 2 * C[:, 0] ** n[0] * C[:, 1] ** n[1]
        single = spikes / (spikes.sum() + (1 - ONE_CATEGORY_PRIOR) * evidence)
        mean_in = integrate.quad(lambda t: (t - low) / (high - low) * post.pdf(t), low, high)[0] / p_in
        projected = (1 - p_in) ** 4  # every candidate outside
        above = (1 - post.cdf(high)) / (1 - p_in)  # the first outside candidate lies above
        out.append((single, (1 - projected) * mean_in + projected * above))
    return out


@pytest.fixture(scope="module")
def spike_and_slab():
    matrices = np.concatenate([np.repeat(C[None], PER_TAGGER, axis=0) for C in TAGGERS])
    return posterior_truth(COUNTS, matrices, rng=np.random.default_rng(11))


def test_posterior_truth_draws_are_distributions(spike_and_slab):
    assert spike_and_slab.shape == (len(COUNTS), 2 * PER_TAGGER, 2)
    assert (spike_and_slab >= 0).all()
    np.testing.assert_allclose(spike_and_slab.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("row", range(len(COUNTS)))
def test_posterior_truth_single_category_probability_is_bayes_rule(spike_and_slab, row):
    for t, (single, slab_mean) in enumerate(_bayes(COUNTS[row], TAGGERS)):
        draws = spike_and_slab[row, t * PER_TAGGER:(t + 1) * PER_TAGGER]
        one_hot = draws == 1.0
        # Monte-Carlo error of a frequency of 12,000 draws: <= 0.0046; 0.02 is > 4 of them
        assert one_hot.mean(axis=0) == pytest.approx(single, abs=0.02), (row, t)
        slab = draws[~one_hot.any(axis=-1), 0]
        assert slab.mean() == pytest.approx(slab_mean, abs=0.02), (row, t)


def test_prior_acceptance_is_the_beta_mass_of_the_taggers_region():
    # p = C^-T q is a distribution iff q_Male lies between C_FM and C_MM
    taggers = [np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([[0.6, 0.4], [0.2, 0.8]])]
    matrices = np.concatenate([np.repeat(C[None], 4000, axis=0) for C in taggers])
    prior = stats.beta(A, A)
    exact = np.mean([prior.cdf(C[0, 0]) - prior.cdf(C[1, 0]) for C in taggers])
    assert _prior_acceptance(matrices, A, rng=np.random.default_rng(0)) == pytest.approx(exact, abs=0.005)


def test_prior_acceptance_of_three_categories_against_monte_carlo():
    rng = np.random.default_rng(5)
    C = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.05, 0.25, 0.7]])
    q = rng.dirichlet(np.full(3, 1 / 3), size=200000)
    exact = (np.linalg.solve(C.T, q.T) >= 0).all(axis=0).mean()
    got = _prior_acceptance(np.repeat(C[None], 3000, axis=0), 1 / 3, rng=rng)
    assert got == pytest.approx(exact, abs=0.005)


def test_prior_acceptance_never_seen_reads_below_one_candidate():
    # a region of width 1e-7: no candidate lands in it; the floor stays below one in all of them
    C = np.array([[0.50000005, 0.49999995], [0.49999995, 0.50000005]])
    got = _prior_acceptance(np.repeat(C[None], 10, axis=0), A, rng=np.random.default_rng(0))
    assert 0 < got < 1 / (10 * 64)


@pytest.mark.parametrize("interval, draws, expected", [
    ((0.0, 0.1), np.linspace(0.5, 0.6, 101), (0.0, 0.6)),
    ((0.5, 0.6), np.linspace(0.0, 0.1, 101), (0.0, 0.6))])
def test_hull_of_disjoint_intervals_spans_both(interval, draws, expected):
    frame = SimpleNamespace(confidence=1.0)  # the credible interval is the draws' whole range
    low, high = _hull(frame, interval, draws)
    assert (float(low), float(high)) == pytest.approx(expected)


# ---------------------------------------------------------------------------- per-kind rows
COLUMNS = ["model", "prompt_id", "sample", "person", "attribute", "label"]
SUITE = suite_from_dict({"name": "rows", "prompts": [
    *({"id": f"p{i}", "text": "a person"} for i in range(10)),
    {"id": "one", "text": "a person"}, {"id": "nobody", "text": "a person"},
    {"id": "crowd", "text": "a crowd", "kind": "group", "count": 2}]})
# Males of 20 one-person images each: model a's near even (its mean entropy's bias extends an
# interval), model b's mostly male (its HOF's upper bound is the test inversion's)
MALES = {"a": (10, 11, 9, 12, 10, 13, 8, 11, 10, 19), "b": (14, 10, 17, 19, 14, 10, 17, 19, 18, 19)}
PROMPTS = [f"p{i}" for i in range(10)]


def _observations():
    rows = []
    for model in ("a", "b"):
        for prompt, males in zip(PROMPTS, MALES[model]):
            rows += [(model, prompt, s, 0, "gender", "Male" if s < males else "Female") for s in range(20)]
        rows += [(model, "one", 0, 0, "gender", "Male"), (model, "nobody", 0, 0, "gender", "unclear")]
        for s in range(10):  # model b's crowd is all unclear: its group kind has no prompt
            labels = ("unclear", "unclear") if model == "b" else ("Male", "Female" if s < 6 else "Male")
            rows += [(model, "crowd", s, p, "gender", label) for p, label in enumerate(labels)]
    return pd.DataFrame(rows, columns=COLUMNS)


def _confusion(rows, model=None):
    names = ("Male", "Female")
    table = pd.DataFrame([("gender", names[i], names[j], rows[i][j]) for i in range(2) for j in range(2)],
                         columns=["attribute", "true", "predicted", "count"])
    return table.assign(model=model if model else None)


OWN_A, POOLED = [[70, 30], [10, 90]], [[75, 25], [12, 88]]
# model b has rows of its own, but for age only: for gender it is corrected with the pooled set
AGE_OF_B = pd.DataFrame([("age", "20-39", "20-39", 50, "b")], columns=["attribute", "true", "predicted",
                                                                       "count", "model"])
CONFUSION = pd.concat([_confusion(OWN_A, "a"), _confusion(POOLED), AGE_OF_B], ignore_index=True)


def _frame(confusion=CONFUSION, **options):
    return BiasFrame(_observations(), suite=SUITE, seed=4, confusion=confusion,
                     **{"n_boot": 60, **options})


@pytest.fixture(scope="module")
def rows_frame():
    return _frame()


def test_validation_sources_ignore_a_models_rows_for_another_attribute(rows_frame):
    counts, source = validation_sources(rows_frame, "gender", CONFUSION)
    assert [counts[s].tolist() for s in source] == [OWN_A, POOLED]


def test_corrected_overall_rows_are_means_and_counts_by_hand(rows_frame):
    overall = rows_frame.corrected_overall
    shares = rows_frame.corrected.set_index(["model", "prompt_id", "label"])["share"]
    entropy = rows_frame.corrected_entropy.set_index(["model", "prompt_id"])["entropy"]
    observed = rows_frame.overall.set_index(["model", "attribute", "kind"])
    images = {**{p: 20 for p in PROMPTS}, "one": 1, "crowd": 10}  # images with a known label
    kinds = {"individual": [*PROMPTS, "one"], "group": ["crowd"]}
    kinds["ambiguous"] = kinds["individual"] + kinds["group"]
    assert set(overall["kind"]) == set(kinds)
    for model, validation in (("a", OWN_A), ("b", POOLED)):
        for kind, prompts in kinds.items():
            row = overall[(overall["model"] == model) & (overall["kind"] == kind)].iloc[0]
            assert row["attribute"] == "gender"
            known = [p for p in prompts if not (model == "b" and p == "crowd")]
            assert row["n_prompts"] == len(known)
            assert row["n_validation"] == np.sum(validation)
            assert row["validation_accuracy"] == pytest.approx(np.trace(validation) / np.sum(validation))
            assert row["observed_hof"] == pytest.approx(
                observed.loc[(model, "gender", kind), "hof"], nan_ok=True)
            assert row["observed_mean_entropy"] == pytest.approx(
                observed.loc[(model, "gender", kind), "mean_entropy"], nan_ok=True)
            if not known:
                assert np.isnan(row[["hof", "hof_ci_low", "hof_ci_high", "mean_entropy",
                                     "mean_entropy_ci_low", "mean_entropy_ci_high"]].astype(float)).all()
                continue
            hof = np.mean([1 - shares[model, p, "Male"] ** images[p] - shares[model, p, "Female"] ** images[p]
                           for p in known])
            assert row["hof"] == pytest.approx(hof)
            assert row["mean_entropy"] == pytest.approx(np.mean([entropy[model, p] for p in known]))
            for metric in ("hof", "mean_entropy"):
                assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"]


def test_a_kind_without_a_known_prompt_and_a_model_without_validation_rows_warn_only_once():
    # only model a has gender rows: b's (pooled) validation set is empty, and b's crowd unclear
    confusion = _confusion(OWN_A, "a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        overall = _frame(confusion, n_boot=40).corrected_overall
    assert {type(w.message) for w in caught} == {UserWarning}  # the empty rows' warning, no numpy one
    group = overall.set_index(["model", "kind"]).loc[("b", "group")]
    assert group["n_prompts"] == 0 and group["n_validation"] == 0
    assert np.isnan(group[["validation_accuracy", "hof", "hof_ci_low", "mean_entropy_ci_high"]]
                    .astype(float)).all()


def test_unknown_prompts_get_no_interval_and_a_one_person_prompt_gets_one(rows_frame):
    for table in (rows_frame.corrected_entropy, rows_frame.corrected):
        by_prompt = table.set_index("prompt_id")
        assert by_prompt.loc["nobody", ["ci_low", "ci_high"]].isna().all().all()
        assert np.isfinite(by_prompt.loc[["one", *PROMPTS], ["ci_low", "ci_high"]].to_numpy(float)).all()


def test_one_draw_still_gives_intervals():
    entropy = _frame(n_boot=1).corrected_entropy.set_index("prompt_id")
    assert np.isfinite(entropy.loc[PROMPTS, ["ci_low", "ci_high"]].to_numpy(float)).all()


@pytest.fixture(scope="module")
def fit(rows_frame):
    return CorrectedAttribute(rows_frame, "gender", CONFUSION, np.random.default_rng(8))


def test_pivots_are_float32_and_filled_for_known_prompts_only(fit):
    known = fit.effective.sum(axis=1) > 0
    assert known.sum() == 2 * 11 + 1  # p0-p9 and one of both models, a's crowd
    for key, values in fit.pivots.items():
        # (g, W): no draw axis, small; the path's simulated estimates stay float64 (an estimate
        # equal to the point is a tie, which float32 rounding breaks)
        if key not in ("path_heterogeneity", "path_simulated"):
            assert values.dtype == np.float32, key  # the (g, [k,] B) arrays halve their memory
        assert np.isfinite(values[known]).all(), key
        if key != "single_category":
            assert np.isnan(values[~known]).all(), key
    # estimate - truth: both distributions, so every draw's share pivots sum to 0 over labels
    np.testing.assert_allclose(fit.pivots["shares"][known].sum(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(fit.pivots["posterior_shares"][known].sum(axis=1), 1.0, atol=1e-5)


def test_every_pivot_is_seeded(rows_frame, fit):
    again = CorrectedAttribute(rows_frame, "gender", CONFUSION, np.random.default_rng(8))
    for key, values in fit.pivots.items():
        np.testing.assert_array_equal(values, again.pivots[key], err_msg=key)


def _basic(value, pivots, alpha):
    """The basic (pivot) interval ``[v - q_hi, v - q_lo]`` in [0, max(1, v)], holding ``v``."""
    q_low, q_high = np.quantile(pivots, [alpha / 2, 1 - alpha / 2])
    return min(max(value - q_high, 0.0), value), max(min(value - q_low, max(1.0, value)), value)


def _expected_interval(frame, fit, metric, groups, used):
    """A kind's corrected interval composed by hand as ``corrected_tables`` documents it: the hull of
    the mean pivots' basic interval and the mean posterior draws' percentile interval; for the HOF
    its test-inversion upper bound, for the mean entropy the bias-aware extension; the lower bound
    0 unless the Monte-Carlo test rejects "every prompt single-category" (p <= 1 - confidence)."""
    alpha = 1 - frame.confidence
    name = {"hof": "heterogeneity", "mean_entropy": "entropy"}[metric]
    value = getattr(fit, name)[groups][used].mean()
    mean = {key: fit.pivots[key][groups][used].astype(np.float64).mean(axis=0)
            for key in (name, f"posterior_{name}", "point_entropy")}
    low, high = _basic(value, mean[name], alpha)
    credible = np.quantile(mean[f"posterior_{name}"], [alpha / 2, 1 - alpha / 2])
    low, high = min(low, credible[0]), max(high, credible[1])
    if metric == "hof":
        high = max(high, heterogeneity_upper_bound(
            value, fit.pivots["path_heterogeneity"][groups][used],
            fit.pivots["path_simulated"][groups][used], confidence=frame.confidence))
    else:
        bias_low, bias_high = _basic(value, mean["point_entropy"], alpha)
        bias = mean["point_entropy"].mean()
        low, high = (low, max(high, bias_high)) if bias < 0 else (min(low, bias_low), high)
    observed = fit.single_category[groups][used].sum()
    null = fit.pivots["single_category"][groups][used].astype(np.float64).sum(axis=0)
    p = (1 + np.sum(null >= observed - 1e-6 * max(1.0, observed))) / (len(null) + 1)
    return value, (0.0 if p > alpha else low), high


def test_corrected_overall_intervals_are_composed_as_documented(rows_frame, fit):
    overall = _corrected_overall(rows_frame, "gender", fit).set_index(["model", "kind"])
    n_prompts = len(rows_frame.prompt_ids)
    for m, model in enumerate(rows_frame.models):
        groups = slice(m * n_prompts, (m + 1) * n_prompts)
        for kind, mask in rows_frame.kind_masks.items():
            used = (fit.observed.known[groups] > 0) & mask
            if not used.any():
                continue
            for metric in ("hof", "mean_entropy"):
                row = overall.loc[(model, kind)]
                expected = _expected_interval(rows_frame, fit, metric, groups, used)
                got = (row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"])
                assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), (model, kind, metric)


def test_a_p_value_of_exactly_one_minus_confidence_rejects_single_category():
    # 3 draws: p = (1 + 0) / 4 = 0.25 = 1 - 0.75 when no simulated statistic reaches the observed
    # one (ten near-even prompts); a test at level 0.25 rejects at p <= 0.25, so the bound stays
    frame = _frame(n_boot=3, confidence=0.75)
    row = frame.corrected_overall.set_index(["model", "kind"]).loc[("a", "individual")]
    assert row["hof_ci_low"] > 0 and row["mean_entropy_ci_low"] > 0


def test_per_prompt_intervals_are_the_hull_of_the_pivot_and_credible_intervals(rows_frame):
    # the same draws as corrected_tables (its generator, gender its only attribute)
    fit = CorrectedAttribute(rows_frame, "gender", CONFUSION, np.random.default_rng([rows_frame.seed, 1]))
    alpha = 1 - rows_frame.confidence
    shares = rows_frame.corrected.set_index(["model", "prompt_id", "label"])
    entropy = rows_frame.corrected_entropy.set_index(["model", "prompt_id"])
    for g, (model, prompt) in enumerate(entropy.index):
        if not fit.observed.known[g]:
            continue
        for point, pivots, posterior, row in (
                *((fit.shares[g, c], fit.pivots["shares"][g, c], fit.pivots["posterior_shares"][g, c],
                   shares.loc[(model, prompt, label)]) for c, label in enumerate(("Male", "Female"))),
                (fit.entropy[g], fit.pivots["entropy"][g], fit.pivots["posterior_entropy"][g],
                 entropy.loc[(model, prompt)])):
            low, high = _basic(point, pivots.astype(np.float64), alpha)
            credible = np.quantile(posterior.astype(np.float64), [alpha / 2, 1 - alpha / 2])
            assert (row["ci_low"], row["ci_high"]) == pytest.approx(
                (min(low, credible[0]), max(high, credible[1])), abs=1e-6), (model, prompt)


def test_bias_pivots_redraw_each_validation_row_with_its_own_size(rows_frame, fit):
    # Replay model a's draws (its own validation set, the first source): the double bootstrap's
    # validation sets have the rows' sizes (70 + 30 Male, 10 + 90 Female), not the set's.
    counts = np.array(OWN_A, dtype=np.float64)
    rng = np.random.default_rng(8)
    matrices = posterior_matrices(counts, n_draws=rows_frame.n_boot, rng=rng)
    refitted = row_stochastic(redrawn_counts(counts, matrices, rng=rng))
    rows = np.flatnonzero((fit.effective.sum(axis=1) > 0) & (fit.source == 0))
    expected = point_entropy_pivots(fit.shares[rows], fit.effective[rows].sum(axis=1), matrices, refitted,
                                    np.array([100, 100]), rng=np.random.default_rng([rows_frame.seed, 2, 0]))
    np.testing.assert_allclose(fit.pivots["point_entropy"][rows], expected, rtol=1e-5, atol=1e-6)
