"""The comparison table's intervals, tests and row layout against known answers.

Known answers: the delta method for the entropy of a large sample; exchangeability (two
models with the same counts have a delta interval symmetric about 0, and swapping model and
baseline mirrors every interval); full enumeration of the conditional test; scipy.
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biaskit.metrics import BiasFrame, equal_distribution_test
from biaskit.metrics.stats import equal_distribution_tests
from biaskit.suite import suite_from_dict

from test_metrics_stats import exact_conditional_p

COLUMNS = ["model", "prompt_id", "sample", "person", "attribute", "label"]


def observations(labels):
    """One person per image: ``{(model, prompt): [label of image 0, 1, ...]}``."""
    return pd.DataFrame([(model, prompt, sample, 0, "gender", label)
                         for (model, prompt), images in labels.items()
                         for sample, label in enumerate(images)], columns=COLUMNS)


def suite_of(*prompts, **kinds):
    return suite_from_dict({"name": "cmp", "prompts": [
        {"id": p, "text": p, **({"kind": kinds[p], "count": 2} if p in kinds else {})} for p in prompts]})


def rows(table, **where):
    selected = table
    for column, value in where.items():
        selected = selected[selected[column] == value]
    return selected


def one(table, **where):
    selected = rows(table, **where)
    assert len(selected) == 1, where
    return selected.iloc[0]


def h2(p):
    """Binary entropy over ln 2."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)


def entropy_sd(p, n):
    """Delta-method sd of the plug-in binary entropy over ln 2, for n independent persons."""
    shares = np.array([p, 1 - p])
    nats = -(shares * np.log(shares)).sum()
    return math.sqrt(((shares * np.log(shares) ** 2).sum() - nats**2) / n) / math.log(2)


def test_entropy_delta_interval_is_the_delta_method_interval_of_two_large_samples():
    # a: 3/4 Male of 600 images, b: 1/5 Male of 600; one person per image.
    labels = {("a", "p"): ["Male"] * 450 + ["Female"] * 150, ("a", "q"): ["Male"] * 300 + ["Female"] * 300,
              ("b", "p"): ["Male"] * 120 + ["Female"] * 480, ("b", "q"): ["Male"] * 300 + ["Female"] * 300}
    frame = BiasFrame(observations(labels), suite=suite_of("p", "q"), n_boot=4000, seed=2)
    entropy = one(frame.compare(baseline="b"), prompt_id="p", metric="entropy")
    h = [-(s * math.log(s) + (1 - s) * math.log(1 - s)) / math.log(2) for s in (0.75, 0.2)]
    assert entropy.delta == pytest.approx(h[0] - h[1])
    half = 1.96 * math.hypot(entropy_sd(0.75, 600), entropy_sd(0.2, 600))  # 0.084
    assert entropy.ci_low == pytest.approx(entropy.delta - half, abs=0.01)
    assert entropy.ci_high == pytest.approx(entropy.delta + half, abs=0.01)


@pytest.fixture(scope="module")
def twins():
    """Two models with the same counts on two prompts (20 images each, 14 Male), one group prompt."""
    same = ["Male"] * 14 + ["Female"] * 6
    labels = {(model, prompt): same for model in ("a", "b") for prompt in ("p", "q")}
    obs = observations(labels)
    # the group prompt q: a second person in every image, of the same gender
    obs = pd.concat([obs, obs[obs.prompt_id == "q"].assign(person=1)], ignore_index=True)
    return BiasFrame(obs, suite=suite_of("p", "q", q="group"), n_boot=4000, seed=3)


def test_same_counts_give_a_delta_interval_symmetric_about_zero(twins):
    # The two models' pivots are identically distributed, so their difference is symmetric
    # about 0 (a sum would carry twice the plug-in's bias, -0.036 at N = 20).  Tolerance: the
    # entropy of 20 draws takes few values, so its quantiles jump; seeds 0-7 stay within 0.032.
    comparison = twins.compare(baseline="b")
    for prompt_id, metric in [("p", "entropy"), ("q", "entropy"), ("all:individual", "mean_entropy"),
                              ("all:group", "mean_entropy"), ("all:ambiguous", "mean_entropy"),
                              ("all:individual", "hof"), ("p", "share:Male")]:
        row = one(comparison, prompt_id=prompt_id, metric=metric)
        assert row.delta == 0.0, (prompt_id, metric)
        assert row.ci_low < -0.05 and row.ci_high > 0.05, (prompt_id, metric, row.ci_low, row.ci_high)
        assert row.ci_low == pytest.approx(-row.ci_high, abs=0.04), (prompt_id, metric)


def test_swapping_model_and_baseline_mirrors_every_interval():
    labels = {("a", "p"): ["Male"] * 15 + ["Female"] * 5, ("a", "q"): ["Male"] * 9 + ["Female"] * 11,
              ("b", "p"): ["Male"] * 6 + ["Female"] * 14, ("b", "q"): ["Male"] * 19 + ["Female"] * 1}
    labels.update({("c", "p"): ["Male"] * 10 + ["Female"] * 10, ("c", "q"): ["Female"] * 20})
    frame = BiasFrame(observations(labels), suite=suite_of("p", "q"), n_boot=4000, seed=4)
    # the baseline between two other models (three models: rows are found by offset)
    against_b = frame.compare(baseline="b")
    assert set(against_b.model) == {"a", "c"}
    c_entropy = one(against_b, model="c", prompt_id="q", metric="entropy")
    assert c_entropy.value == 0.0 and c_entropy.delta == pytest.approx(-h2(0.95))
    assert c_entropy.ci_low <= c_entropy.delta <= c_entropy.ci_high
    forth, back = against_b[against_b.model == "a"], frame.compare(baseline="a")
    back = back[back.model == "b"]
    key = ["prompt_id", "metric"]
    joined = forth.merge(back, on=key, suffixes=("", "_back"))
    assert len(joined) == len(forth) == len(back) > 0
    assert np.allclose(joined.delta, -joined.delta_back)
    assert joined[["ci_low", "ci_high"]].notna().all().all()
    # the pivots' quantiles swap sides; the Monte-Carlo error of a 2.5 % quantile of 4000 draws
    assert np.allclose(joined.ci_low, -joined.ci_high_back, atol=0.02)
    assert np.allclose(joined.ci_high, -joined.ci_low_back, atol=0.02)
    assert (joined.ci_low <= joined.delta).all() and (joined.delta <= joined.ci_high).all()
    # the tests are symmetric too: the same table, rows exchanged
    assert np.allclose(joined.p_value, joined.p_value_back, equal_nan=True)


def test_rows_come_prompt_by_prompt_with_the_metrics_in_a_fixed_order():
    prompts = [f"p{i}" for i in range(12)]
    labels = {(model, p): ["Male"] * (3 + i % 4) + ["Female"] * 3 for model in ("a", "b")
              for i, p in enumerate(prompts)}
    frame = BiasFrame(observations(labels), suite=suite_of(*prompts, p3="group"), n_boot=20)
    table = frame.compare(baseline="b")
    per_prompt = table[~table.prompt_id.str.startswith("all:")]
    assert list(pd.unique(per_prompt.prompt_id)) == prompts
    for prompt_id, metrics in per_prompt.groupby("prompt_id", sort=False).metric:
        expected = ["entropy", "share:Male", "share:Female"]
        if prompt_id == "p3":  # a group prompt: persons in one image can differ
            expected.append("within_image_heterogeneity")
        assert list(metrics) == expected, prompt_id
    # no prompt expects a label: no match rate, per prompt or per kind
    assert "match_rate" not in set(table.metric)
    assert table.index.tolist() == list(range(len(table)))


def test_group_prompts_have_a_within_image_heterogeneity_row(twins):
    comparison = twins.compare(baseline="b")
    within = one(comparison, prompt_id="q", metric="within_image_heterogeneity")
    assert within.value == within.baseline_value == 0.0 and within.ci_low < 0 < within.ci_high
    assert rows(comparison, prompt_id="p", metric="within_image_heterogeneity").empty


def test_comparison_p_values_are_drawn_with_the_frames_seed_and_permutations():
    # 3 categories and small counts: the Monte-Carlo conditional test.
    suite = suite_from_dict({"name": "mc", "prompts": [{"id": "p", "text": "p"}]})
    labels = {("a", "p"): ["MST1"] * 4 + ["MST2"], ("b", "p"): ["MST1", "MST2", "MST2"] + ["MST3"] * 3}
    obs = observations(labels).assign(attribute="skin_tone")

    def p_value(seed, n_permutations=1999):
        frame = BiasFrame(obs, suite=suite, n_boot=10, seed=seed, n_permutations=n_permutations)
        return one(frame.compare(baseline="b"), metric="entropy").p_value

    exact = exact_conditional_p([[4, 1, 0], [1, 2, 3]])
    first = p_value(5)
    assert first == pytest.approx(exact, abs=0.015) and first == p_value(5)
    assert first != p_value(6)  # the frame's seed, not a fixed one
    coarse = p_value(5, n_permutations=19)  # p = (1 + draws at least as extreme) / 20
    assert coarse * 20 == pytest.approx(round(coarse * 20)) and coarse != first


# ---------------------------------------------------------------- the batched tests
def test_batched_tests_take_every_path_like_the_single_test():
    a = np.array([[8, 2, 0, 0],     # expected counts exactly 5: chi-square, not Fisher
                  [0, 1, 0, 2],     # small 2 x 2 in columns 1 and 3: Fisher
                  [0, 3, 0, 1],
                  [4, 1, 0, 0],     # small 2 x 3: Monte Carlo
                  [1, 6, 4, 0],     # a column with one person: it counts
                  [0, 0, 0, 0],     # nobody on one side: NaN
                  [3, 0, 0, 0],     # one category on both sides: nothing to tell apart
                  [1, 0, 0, 0],     # one person on one side, two categories: Fisher
                  [0, 0, 0, 0]])    # nobody on one side, three categories on the other: NaN
    b = np.array([[2, 8, 0, 0], [0, 4, 0, 0], [0, 0, 0, 5], [1, 2, 3, 0], [0, 4, 6, 0],
                  [0, 2, 3, 0], [2, 0, 0, 0], [0, 3, 0, 0], [1, 2, 3, 0]])
    p = equal_distribution_tests(a, b, rng=np.random.default_rng(0), n_permutations=20000)
    assert p.dtype == np.float64
    assert p[0] == pytest.approx(stats.chi2_contingency([[8, 2], [2, 8]], correction=False).pvalue)
    assert equal_distribution_test(a[0], b[0]).method == "chi-square"
    assert p[1] == pytest.approx(stats.fisher_exact([[1, 2], [4, 0]]).pvalue)
    assert p[2] == pytest.approx(stats.fisher_exact([[3, 1], [0, 5]]).pvalue)
    assert p[3] == pytest.approx(exact_conditional_p([[4, 1, 0], [1, 2, 3]]), abs=0.01)
    assert p[4] == pytest.approx(exact_conditional_p([[1, 6, 4], [0, 4, 6]]), abs=0.01)
    assert math.isnan(p[5]) and p[6] == 1.0
    assert p[7] == pytest.approx(stats.fisher_exact([[1, 0], [0, 3]]).pvalue)
    assert math.isnan(p[8])


def test_single_test_is_seeded_by_default_and_reads_whole_number_floats():
    a, b = np.array([4, 1, 0]), np.array([1, 2, 3])
    default = equal_distribution_test(a, b)
    assert default.method == "permutation"
    assert default == equal_distribution_test(a, b, rng=np.random.default_rng(0))
    assert default != equal_distribution_test(a, b, rng=np.random.default_rng(1))
    assert equal_distribution_test(a.astype(float), b.astype(float)) == default
    assert equal_distribution_test(np.array([0, 0]), np.array([1, 2])).method == "none"
    assert equal_distribution_test(np.array([3, 0]), np.array([1, 0])) == (1.0, "none")
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        equal_distribution_test(np.array([1, 2]), np.array([1, 2, 3]))


def test_batched_tests_are_seeded_by_default():
    # five small 2 x 3 tables: Monte-Carlo p-values, which only a fixed seed repeats
    a = np.array([[4, 1, 0], [3, 1, 1], [2, 2, 1], [5, 0, 1], [1, 3, 1]])
    b = np.array([[1, 2, 3], [1, 2, 2], [0, 1, 4], [2, 2, 2], [3, 0, 2]])
    default = equal_distribution_tests(a, b)
    assert np.array_equal(default, equal_distribution_tests(a, b, rng=np.random.default_rng(0)))
    assert not np.array_equal(default, equal_distribution_tests(a, b, rng=np.random.default_rng(1)))
