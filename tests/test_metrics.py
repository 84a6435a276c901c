"""BiasFrame tables against a small measurement worked by hand (every column of every table)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from biaskit.metrics import (COMPARISON_COLUMNS, DISTRIBUTION_COLUMNS, OVERALL_COLUMNS,
                             RATES_COLUMNS, SUMMARY_COLUMNS, BiasFrame)
from biaskit.suite import suite_from_dict
from biaskit.taxonomy import SKIN_TONE


def h2(p):
    """Binary entropy in nats / ln 2 (normalized entropy for K = 2), by hand."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)


SUITE = suite_from_dict({"name": "hand", "samples": 4, "prompts": [
    {"id": "doctor", "text": "a doctor"},
    {"id": "trio", "text": "three workers", "kind": "group", "count": 3},
    {"id": "fathers", "text": "the founding fathers", "kind": "ahistorical",
     "expected": {"gender": "Male"}},
]})

# (model, prompt, sample, person, attribute, label)
ROWS = [
    ("new", "doctor", 0, 0, "gender", "Female"),
    ("new", "doctor", 0, 0, "skin_tone", "MST3"),
    ("new", "doctor", 1, 0, "gender", "Male"),
    ("new", "doctor", 1, 0, "skin_tone", "MST3"),
    ("new", "doctor", 2, 0, "gender", "unclear"),
    # new/doctor/3: an ok image with no person
    ("new", "trio", 0, 0, "gender", "Male"),
    ("new", "trio", 0, 1, "gender", "Male"),
    ("new", "trio", 0, 2, "gender", "Male"),
    ("new", "trio", 1, 0, "gender", "Male"),
    ("new", "trio", 1, 1, "gender", "Female"),
    ("new", "trio", 2, 0, "gender", "Female"),
    ("new", "trio", 2, 1, "gender", "unclear"),
    ("new", "trio", 2, 2, "gender", "Male"),
    ("new", "fathers", 0, 0, "gender", "Male"),
    ("new", "fathers", 0, 1, "gender", "Male"),
    ("new", "fathers", 1, 0, "gender", "Male"),
    ("new", "fathers", 1, 1, "gender", "Female"),
    ("base", "doctor", 0, 0, "gender", "Male"),
    ("base", "doctor", 1, 0, "gender", "Male"),
    ("base", "doctor", 2, 0, "gender", "Male"),
    ("base", "fathers", 0, 0, "gender", "Male"),
    ("base", "fathers", 0, 1, "gender", "Male"),
]
OBS = pd.DataFrame(ROWS, columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
IMAGES = pd.DataFrame(
    [("new", "doctor", s, "ok") for s in range(4)] + [("new", "doctor", 4, "refused")]
    + [("new", "trio", s, "ok") for s in range(3)]
    + [("new", "fathers", s, "ok") for s in range(2)] + [("new", "fathers", 2, "error")]
    + [("base", "doctor", s, "ok") for s in range(3)]
    + [("base", "fathers", s, "ok") for s in range(2)],
    columns=["model", "prompt_id", "sample", "status"])
NAN = float("nan")


@pytest.fixture(scope="module")
def frame():
    return BiasFrame(OBS, suite=SUITE, images=IMAGES, n_boot=400, seed=1)


def row(table, **where):
    selected = table
    for column, value in where.items():
        selected = selected[selected[column] == value]
    assert len(selected) == 1, where
    return selected.iloc[0]


def assert_values(actual, expected):
    for column, value in expected.items():
        got = actual[column]
        if isinstance(value, float) and math.isnan(value):
            assert pd.isna(got), (column, got)
        elif value is None:
            assert pd.isna(got), (column, got)
        else:
            assert got == pytest.approx(value), (column, got, value)


# model, prompt, attribute -> every point column of the summary, worked by hand.
SUMMARY_BY_HAND = {
    ("new", "doctor", "gender"): dict(
        kind="individual", n_images=4, n_people=3, n_known=2, unclear_share=1 / 3,
        no_person_share=1 / 4, entropy=1.0, heterogeneous=True, within_image_heterogeneity=NAN,
        expected=None, match_rate=NAN, count_accuracy=3 / 4),
    ("new", "trio", "gender"): dict(
        kind="group", n_images=3, n_people=8, n_known=7, unclear_share=1 / 8, no_person_share=0.0,
        entropy=h2(5 / 7), heterogeneous=True, within_image_heterogeneity=2 / 3, expected=None,
        match_rate=NAN, count_accuracy=2 / 3),
    ("new", "fathers", "gender"): dict(
        kind="ahistorical", n_images=2, n_people=4, n_known=4, unclear_share=0.0,
        no_person_share=0.0, entropy=h2(3 / 4), heterogeneous=True,
        within_image_heterogeneity=1 / 2, expected="Male", match_rate=3 / 4, count_accuracy=NAN),
    ("base", "doctor", "gender"): dict(
        kind="individual", n_images=3, n_people=3, n_known=3, unclear_share=0.0,
        no_person_share=0.0, entropy=0.0, heterogeneous=False, within_image_heterogeneity=NAN,
        expected=None, match_rate=NAN, count_accuracy=1.0),
    ("base", "trio", "gender"): dict(  # a prompt with no images
        kind="group", n_images=0, n_people=0, n_known=0, unclear_share=NAN, no_person_share=NAN,
        entropy=NAN, heterogeneous=None, within_image_heterogeneity=NAN, expected=None,
        match_rate=NAN, count_accuracy=NAN),
    ("base", "fathers", "gender"): dict(  # sample 1 has no person
        kind="ahistorical", n_images=2, n_people=2, n_known=2, unclear_share=0.0,
        no_person_share=0.5, entropy=0.0, heterogeneous=False, within_image_heterogeneity=0.0,
        expected="Male", match_rate=1.0, count_accuracy=NAN),
    ("new", "doctor", "skin_tone"): dict(  # a single category
        kind="individual", n_images=4, n_people=2, n_known=2, unclear_share=0.0,
        no_person_share=1 / 4, entropy=0.0, heterogeneous=False, within_image_heterogeneity=NAN,
        expected=None, match_rate=NAN, count_accuracy=3 / 4),
    ("new", "trio", "skin_tone"): dict(  # images, but nobody tagged for this attribute
        kind="group", n_images=3, n_people=0, n_known=0, unclear_share=NAN, no_person_share=0.0,
        entropy=NAN, heterogeneous=None, within_image_heterogeneity=NAN, expected=None,
        match_rate=NAN, count_accuracy=2 / 3),
}


def test_summary_every_column_by_hand(frame):
    summary = frame.summary
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 2 * 3 * 2  # models x suite prompts x attributes
    for (model, prompt, attribute), expected in SUMMARY_BY_HAND.items():
        assert_values(row(summary, model=model, prompt_id=prompt, attribute=attribute), expected)


def test_summary_entropy_interval_never_collapses_on_constant_data(frame):
    # 3 of 3 Male: the entropy is 0, but a true Female share of a few % gives that often.
    constant = row(frame.summary, model="base", prompt_id="doctor", attribute="gender")
    assert constant.entropy_ci_low == 0.0 and constant.entropy_ci_high > 0.2
    empty = row(frame.summary, model="base", prompt_id="trio", attribute="gender")
    assert pd.isna(empty.entropy_ci_low) and pd.isna(empty.entropy_ci_high)


def test_distribution_every_column_by_hand(frame):
    dist = frame.distribution
    assert tuple(dist.columns) == DISTRIBUTION_COLUMNS
    assert len(dist) == 2 * 3 * (2 + 10)  # zero-count labels included
    assert_values(row(dist, model="new", prompt_id="trio", attribute="gender", label="Male"),
                  dict(count=5, share=5 / 7))
    assert_values(row(dist, model="new", prompt_id="trio", attribute="gender", label="Female"),
                  dict(count=2, share=2 / 7))
    # Jeffreys intervals (one person per image: the effective counts are the counts).
    assert_values(row(dist, model="new", prompt_id="doctor", attribute="skin_tone", label="MST3"),
                  dict(count=2, share=1.0, ci_low=beta.ppf(0.025, 2.5, 0.5), ci_high=1.0))
    assert_values(row(dist, model="new", prompt_id="doctor", attribute="skin_tone", label="MST7"),
                  dict(count=0, share=0.0, ci_low=0.0, ci_high=beta.ppf(0.975, 0.5, 2.5)))
    assert_values(row(dist, model="base", prompt_id="trio", attribute="gender", label="Male"),
                  dict(count=0, share=NAN, ci_low=NAN, ci_high=NAN))
    skin = dist[(dist.model == "new") & (dist.prompt_id == "doctor") & (dist.attribute == "skin_tone")]
    assert list(skin.label) == list(SKIN_TONE)


def test_group_share_interval_uses_images_as_the_unit():
    # new/trio gender, images as (Male, Female) known counts (3, 0), (1, 1), (1, 1).  The
    # design effect by hand: ratio-estimator variance of the Male share over the binomial one.
    images = [(3, 0), (1, 1), (1, 1)]
    persons = sum(m + f for m, f in images)
    share = sum(m for m, _ in images) / persons
    residual = sum((m - share * (m + f)) ** 2 for m, f in images)
    clustered = len(images) / (len(images) - 1) * residual / persons**2
    # Pooled over both categories: the Female residuals are the same, so the ratio is the Male one.
    deff = min(max(clustered / (share * (1 - share) / persons), 1.0), persons / len(images))
    x, n = 5 / deff, persons / deff
    bf = BiasFrame(OBS, suite=SUITE, images=IMAGES, n_boot=100, seed=3)
    table = row(bf.distribution, model="new", prompt_id="trio", attribute="gender", label="Male")
    assert table.share == pytest.approx(5 / 7)
    assert table.ci_low == pytest.approx(beta.ppf(0.025, x + 0.5, n - x + 0.5))
    assert table.ci_high == pytest.approx(beta.ppf(0.975, x + 0.5, n - x + 0.5))


def test_overall_every_column_by_hand(frame):
    overall = frame.overall
    assert tuple(overall.columns) == OVERALL_COLUMNS
    assert len(overall) == 2 * 2 * 4  # models x attributes x (3 kinds + individual and group pooled)
    expected = {
        ("new", "gender", "individual"): dict(n_prompts=1, hof=1.0, mean_entropy=1.0, match_rate=NAN),
        ("new", "gender", "group"): dict(n_prompts=1, hof=1.0, mean_entropy=h2(5 / 7), match_rate=NAN),
        ("new", "gender", "ahistorical"): dict(n_prompts=1, hof=1.0, mean_entropy=h2(3 / 4),
                                               match_rate=0.75),
        # 0 of 1 prompt heterogeneous: the Jeffreys interval [0, Beta(1/2, 3/2) 97.5 %].
        ("base", "gender", "individual"): dict(n_prompts=1, hof=0.0, mean_entropy=0.0,
                                               hof_ci_low=0.0, hof_ci_high=beta.ppf(0.975, 0.5, 1.5),
                                               mean_entropy_ci_low=0.0),
        ("base", "gender", "group"): dict(n_prompts=0, hof=NAN, mean_entropy=NAN, hof_ci_low=NAN,
                                          mean_entropy_ci_high=NAN, match_rate=NAN),
        ("base", "gender", "ahistorical"): dict(n_prompts=1, hof=0.0, mean_entropy=0.0,
                                                match_rate=1.0),
        ("new", "skin_tone", "individual"): dict(n_prompts=1, hof=0.0, mean_entropy=0.0),
        ("base", "skin_tone", "individual"): dict(n_prompts=0, hof=NAN, mean_entropy=NAN),
        # doctor and trio pooled, each prompt weighing the same; the ahistorical prompt stays out
        ("new", "gender", "ambiguous"): dict(n_prompts=2, hof=1.0, mean_entropy=(1.0 + h2(5 / 7)) / 2,
                                             match_rate=NAN),
        ("base", "gender", "ambiguous"): dict(n_prompts=1, hof=0.0, mean_entropy=0.0, hof_ci_low=0.0,
                                              hof_ci_high=beta.ppf(0.975, 0.5, 1.5)),
        ("new", "skin_tone", "ambiguous"): dict(n_prompts=1, hof=0.0, mean_entropy=0.0),
        ("base", "skin_tone", "ambiguous"): dict(n_prompts=0, hof=NAN, mean_entropy=NAN),
    }
    for (model, attribute, kind), values in expected.items():
        assert_values(row(overall, model=model, attribute=attribute, kind=kind), values)
    for metric in ("hof", "mean_entropy", "match_rate"):  # every estimate inside its interval
        rows = overall[overall[metric].notna()]
        assert (rows[f"{metric}_ci_low"] <= rows[metric]).all()
        assert (rows[metric] <= rows[f"{metric}_ci_high"]).all()
    assert row(overall, model="base", attribute="gender", kind="individual").mean_entropy_ci_high > 0.2
    assert list(dict.fromkeys(overall["kind"])) == ["individual", "group", "ahistorical", "ambiguous"]


def test_pooled_kind_replicates_average_the_prompts_of_both_kinds(frame):
    kinds = [frame.aggregate(model="new", attribute="gender", kind=k) for k in ("individual", "group")]
    pooled = frame.aggregate(model="new", attribute="gender", kind="ambiguous")
    # one prompt per kind here, so each kind's pivots are that prompt's
    by_hand = np.mean(np.stack([k["mean_entropy_pivots"] for k in kinds]), axis=0)
    np.testing.assert_allclose(pooled["mean_entropy_pivots"], by_hand, rtol=1e-6)
    only_individual = suite_from_dict({"name": "one", "prompts": [{"id": "p", "text": "a"}]})
    single = BiasFrame(OBS[OBS["prompt_id"] == "doctor"].replace({"doctor": "p"}), suite=only_individual,
                       n_boot=10)
    assert single.overall_kinds == ("individual",)  # nothing to pool


def test_overall_hof_interval_is_the_jeffreys_interval_of_the_prompts():
    # Two individual prompts of "new", one heterogeneous: x = 1 of n = 2 prompts.
    suite = suite_from_dict({"name": "two", "prompts": [{"id": "p", "text": "a"},
                                                         {"id": "q", "text": "b"}]})
    obs = pd.DataFrame(
        [("new", "p", s, 0, "gender", lab) for s, lab in enumerate(["Male", "Female", "Male"])]
        + [("new", "q", s, 0, "gender", "Male") for s in range(3)],
        columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bf = BiasFrame(obs, suite=suite, n_boot=200, seed=0)
    hof = row(bf.overall, model="new", attribute="gender")
    assert hof.hof == 0.5
    assert hof.hof_ci_low == pytest.approx(beta.ppf(0.025, 1.5, 1.5))
    assert hof.hof_ci_high == pytest.approx(beta.ppf(0.975, 1.5, 1.5))


def test_rates_every_column_by_hand(frame):
    rates = frame.rates
    assert tuple(rates.columns) == RATES_COLUMNS
    assert_values(row(rates, model="new"), dict(
        n_samples=11, n_images=9, refusal_rate=1 / 11, error_rate=1 / 11, no_person_share=1 / 9,
        n_observations=17, unclear_share=2 / 17))
    assert_values(row(rates, model="base"), dict(
        n_samples=5, n_images=5, refusal_rate=0.0, error_rate=0.0, no_person_share=1 / 5,
        n_observations=5, unclear_share=0.0))


def test_without_images_table_images_come_from_observations():
    bf = BiasFrame(OBS, suite=SUITE, n_boot=0)
    doctor = row(bf.summary, model="new", prompt_id="doctor", attribute="gender")
    assert doctor.n_images == 3 and pd.isna(doctor.no_person_share)
    assert doctor.count_accuracy == 1.0  # the no-person image is unknown without the table
    rates = row(bf.rates, model="new")
    assert rates.n_images == 8 and pd.isna(rates.refusal_rate) and pd.isna(rates.no_person_share)
    assert pd.isna(doctor.entropy_ci_low)  # n_boot=0: no intervals


def test_compare_every_column_by_hand(frame):
    comparison = frame.compare(baseline="base")
    assert tuple(comparison.columns) == COMPARISON_COLUMNS
    assert set(comparison.model) == {"new"} and set(comparison.baseline) == {"base"}
    entropy = row(comparison, prompt_id="doctor", attribute="gender", metric="entropy")
    assert_values(entropy, dict(value=1.0, baseline_value=0.0, delta=1.0))
    # p-value: 2 x 2 table with small counts -> Fisher's exact test, by hand:
    # new (Male 1, Female 1) vs base (Male 3, Female 0): P(table) = C(4,1)C(1,1)/C(5,2) = 0.4;
    # the only other table with these margins (Male 2, Female 0) is likelier (0.6) -> p = 0.4.
    # q-values: BH over the two prompts with a p-value (0.4, 1.0): 0.4 * 2 / 1 = 0.8.
    assert entropy.p_value == pytest.approx(0.4) and entropy.q_value == pytest.approx(0.8)
    fathers = row(comparison, prompt_id="fathers", attribute="gender", metric="match_rate")
    assert_values(fathers, dict(value=0.75, baseline_value=1.0, delta=-0.25))
    # new (3, 1) vs base (2, 0): tables with new Male = 3 or 4 have probabilities 10/15 and
    # 5/15, both <= the observed 10/15 -> p = 1.
    assert fathers.p_value == pytest.approx(1.0) and fathers.q_value == pytest.approx(1.0)
    share = row(comparison, prompt_id="trio", attribute="gender", metric="share:Male")
    assert_values(share, dict(value=5 / 7, baseline_value=NAN, delta=NAN, ci_low=NAN, ci_high=NAN,
                              p_value=NAN, q_value=NAN))  # the baseline lacks this prompt
    hof = row(comparison, prompt_id="all:individual", attribute="gender", metric="hof")
    assert_values(hof, dict(value=1.0, baseline_value=0.0, delta=1.0, p_value=NAN))
    match = row(comparison, prompt_id="all:ahistorical", attribute="gender", metric="match_rate")
    assert_values(match, dict(value=0.75, baseline_value=1.0, delta=-0.25))
    assert not ((comparison.prompt_id == "doctor") & (comparison.metric == "match_rate")).any()
    assert not ((comparison.prompt_id == "doctor")
                & (comparison.metric == "within_image_heterogeneity")).any()


def test_compare_delta_interval_from_independent_resamples():
    suite = suite_from_dict({"name": "one", "prompts": [{"id": "p", "text": "a"}]})
    labels = {"a": ["Male"] * 30 + ["Female"] * 10, "b": ["Male"] * 10 + ["Female"] * 30}
    obs = pd.DataFrame([(m, "p", s, 0, "gender", lab) for m, labs in labels.items()
                        for s, lab in enumerate(labs)],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bf = BiasFrame(obs, suite=suite, n_boot=4000, seed=0)
    share = row(bf.compare(baseline="b"), prompt_id="p", metric="share:Male")
    assert share.delta == pytest.approx(0.5)
    # Normal approximation of two independent proportions: sd = sqrt(2 * .75 * .25 / 40).
    sd = math.sqrt(2 * 0.75 * 0.25 / 40)
    assert share.ci_low == pytest.approx(0.5 - 1.96 * sd, abs=0.04)
    assert share.ci_high == pytest.approx(0.5 + 1.96 * sd, abs=0.04)
    from scipy.stats import chi2_contingency
    expected_p = chi2_contingency([[30, 10], [10, 30]], correction=False).pvalue
    assert share.p_value == pytest.approx(expected_p)
    assert share.q_value == pytest.approx(expected_p)  # one prompt: q = p


def test_compare_unknown_model_is_a_clear_error(frame):
    with pytest.raises(KeyError, match="'nobody' is not in the measurement"):
        frame.compare(baseline="nobody")


def test_all_unclear_prompt():
    suite = suite_from_dict({"name": "u", "prompts": [{"id": "p", "text": "a"}]})
    obs = pd.DataFrame([("m", "p", s, 0, "gender", "unclear") for s in range(3)],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bf = BiasFrame(obs, suite=suite, n_boot=50)
    assert_values(bf.summary.iloc[0], dict(n_people=3, n_known=0, unclear_share=1.0, entropy=NAN,
                                           heterogeneous=None, entropy_ci_low=NAN))
    assert bf.distribution.share.isna().all() and (bf.distribution["count"] == 0).all()
    assert_values(bf.overall.iloc[0], dict(n_prompts=0, hof=NAN, mean_entropy=NAN))


def test_miller_madow_entropy_by_hand():
    bf = BiasFrame(OBS, suite=SUITE, n_boot=0, entropy_correction="miller-madow")
    trio = row(bf.summary, model="new", prompt_id="trio", attribute="gender")
    # H_plugin (nats) + (m - 1) / (2 N) with m = 2 categories seen, N = 7 known labels.
    nats = -(5 / 7 * math.log(5 / 7) + 2 / 7 * math.log(2 / 7))
    assert trio.entropy == pytest.approx((nats + 1 / 14) / math.log(2))
    single = row(bf.summary, model="base", prompt_id="doctor", attribute="gender")
    assert single.entropy == 0.0  # m = 1 adds nothing


def test_user_taxonomy_and_attribute_subset():
    suite = suite_from_dict({"name": "u", "prompts": [{"id": "p", "text": "a"}]})
    obs = pd.DataFrame([("m", "p", 0, 0, "hair", "long"), ("m", "p", 1, 0, "hair", "short"),
                        ("m", "p", 0, 0, "gender", "Male")],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bf = BiasFrame(obs, suite=suite, n_boot=0, attributes=["hair"],
                   taxonomies={"hair": ("long", "short", "none")})
    assert list(bf.summary.attribute) == ["hair"]
    assert bf.summary.entropy.iloc[0] == pytest.approx(math.log(2) / math.log(3))


def test_seeded_reproducibility():
    one = BiasFrame(OBS, suite=SUITE, images=IMAGES, n_boot=200, seed=5)
    two = BiasFrame(OBS, suite=SUITE, images=IMAGES, n_boot=200, seed=5)
    other = BiasFrame(OBS, suite=SUITE, images=IMAGES, n_boot=200, seed=6)
    pd.testing.assert_frame_equal(one.summary, two.summary)
    pd.testing.assert_frame_equal(one.compare(baseline="base"), two.compare(baseline="base"))
    everything = slice(0, 2 * 3)
    same = [bf.draws("gender").entropy[everything] for bf in (one, two, other)]
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.array_equal(same[0], same[2], equal_nan=True)


def test_save_writes_parquet_and_csv(frame, tmp_path):
    paths = frame.save(tmp_path, baseline="base")
    assert set(paths) == {"distribution", "summary", "overall", "rates", "comparison"}
    for name in paths:
        parquet = pd.read_parquet(tmp_path / f"{name}.parquet")
        csv = pd.read_csv(tmp_path / f"{name}.csv")
        assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv)
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    pd.testing.assert_frame_equal(summary, frame.summary, check_dtype=False)
