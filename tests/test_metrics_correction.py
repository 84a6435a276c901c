"""Classifier-error correction on simulated data: a known truth, a simulated tagger."""

import numpy as np
import pandas as pd
import pytest

from biaskit.metrics import CORRECTED_ENTROPY_COLUMNS, BiasFrame, normalized_entropy, unmix
from biaskit.metrics.correction import confusion_counts, row_stochastic
from biaskit.suite import suite_from_dict
from biaskit.taxonomy import RACE4

# A tagger that confuses race4 categories: C[i, j] = P(predicted j | true i).
CONFUSION = np.array([
    [0.80, 0.05, 0.10, 0.05],
    [0.10, 0.75, 0.05, 0.10],
    [0.15, 0.05, 0.70, 0.10],
    [0.10, 0.15, 0.05, 0.70],
])
TRUTH = np.array([0.55, 0.15, 0.20, 0.10])


def simulate(n, truth, rng):
    true = rng.choice(len(truth), size=n, p=truth)
    predicted = np.array([rng.choice(4, p=CONFUSION[t]) for t in true])
    return true, predicted


def validation_table(rng, per_class=500):
    """A tidy confusion table as `biaskit validate` writes it, with some 'unclear' predictions."""
    rows = []
    for i, true in enumerate(RACE4):
        predicted = rng.choice(4, size=per_class, p=CONFUSION[i])
        for j, label in enumerate(RACE4):
            rows.append(("race4", true, label, int((predicted == j).sum())))
        rows.append(("race4", true, "unclear", 7))
    return pd.DataFrame(rows, columns=["attribute", "true", "predicted", "count"])


def test_unmix_inverts_an_exact_mixture():
    observed = CONFUSION.T @ TRUTH
    assert unmix(observed, CONFUSION) == pytest.approx(TRUTH)


def test_unmix_stays_on_the_simplex_when_the_inverse_leaves_it():
    truth = np.array([0.7, 0.3, 0.0, 0.0])
    observed = CONFUSION.T @ truth
    observed[2] -= 0.03  # sampling noise pushes the exact inverse below zero
    observed[0] += 0.03
    assert (np.linalg.solve(CONFUSION.T, observed) < 0).any()
    estimate = unmix(observed, CONFUSION)
    assert (estimate >= 0).all() and estimate.sum() == pytest.approx(1.0)
    assert estimate == pytest.approx(truth, abs=0.06)


def test_unmix_of_no_data_is_nan():
    assert np.isnan(unmix(np.zeros(4), CONFUSION)).all()


def test_confusion_table_drops_unclear_and_checks_labels():
    table = validation_table(np.random.default_rng(0))
    counts = confusion_counts(table, attribute="race4", labels=RACE4)
    assert counts.sum(axis=1).tolist() == [500.0] * 4
    bad = pd.concat([table, pd.DataFrame([("race4", "Martian", "White", 3)], columns=table.columns)],
                    ignore_index=True)
    with pytest.raises(ValueError, match=r"confusion: row 21: label 'Martian' is not in the 'race4'"):
        confusion_counts(bad, attribute="race4", labels=RACE4)
    with pytest.warns(UserWarning, match="no validation example with true label 'Indian'"):
        matrix = row_stochastic(np.vstack([counts[:3], np.zeros(4)]), attribute="race4",
                                labels=RACE4)
    assert matrix[3].tolist() == [0, 0, 0, 1]


def test_recovers_true_shares_of_2000_persons_within_0_03():
    rng = np.random.default_rng(42)
    true, predicted = simulate(2000, TRUTH, rng)
    naive = np.bincount(predicted, minlength=4) / 2000
    assert np.abs(naive - TRUTH).max() > 0.05  # the tagger's error is visible uncorrected
    suite = suite_from_dict({"name": "c", "prompts": [{"id": "crowd", "text": "people"}]})
    obs = pd.DataFrame({"model": "m", "prompt_id": "crowd", "sample": np.arange(2000) // 4,
                        "person": np.arange(2000) % 4, "attribute": "race4",
                        "label": np.array(RACE4, dtype=object)[predicted]})
    bf = BiasFrame(obs, suite=suite, n_boot=300, seed=0, confusion=validation_table(rng))
    corrected = bf.corrected.set_index("label").loc[list(RACE4)]
    assert corrected.observed_share.to_numpy() == pytest.approx(naive)
    assert np.abs(corrected.share.to_numpy() - TRUTH).max() < 0.03
    assert np.isclose(corrected.share.sum(), 1.0)
    # Intervals carry image and validation-set uncertainty, and cover the truth here.
    assert ((corrected.ci_low <= TRUTH) & (TRUTH <= corrected.ci_high)).all()
    assert ((corrected.ci_low <= corrected.share) & (corrected.share <= corrected.ci_high)).all()
    # The corrected entropy is that of the corrected shares, and comes back near the truth's.
    entropy = bf.corrected_entropy.iloc[0]
    assert entropy.observed_entropy == pytest.approx(bf.summary.entropy.iloc[0])
    assert entropy.entropy == pytest.approx(float(normalized_entropy(corrected.share.to_numpy())))
    true_entropy = float(normalized_entropy(TRUTH))
    assert abs(entropy.entropy - true_entropy) < abs(entropy.observed_entropy - true_entropy)
    assert entropy.ci_low <= true_entropy <= entropy.ci_high


def test_corrected_entropy_of_an_exact_mixture_by_hand():
    # 11 Male and 9 Female tagged by a tagger with P(Female | Male) = 0.1, P(Male | Female) = 0.2:
    # q = C^T p gives p = (0.5, 0.5) exactly, entropy 1.
    suite = suite_from_dict({"name": "c", "prompts": [{"id": "p", "text": "a"}]})
    labels = ["Male"] * 11 + ["Female"] * 9
    obs = pd.DataFrame({"model": "m", "prompt_id": "p", "sample": range(20), "person": 0,
                        "attribute": "gender", "label": labels})
    confusion = pd.DataFrame([("gender", "Male", "Male", 90), ("gender", "Male", "Female", 10),
                              ("gender", "Female", "Female", 80), ("gender", "Female", "Male", 20)],
                             columns=["attribute", "true", "predicted", "count"])
    table = BiasFrame(obs, suite=suite, n_boot=200, seed=0, confusion=confusion).corrected_entropy
    assert tuple(table.columns) == CORRECTED_ENTROPY_COLUMNS and len(table) == 1
    row = table.iloc[0]
    h = -(0.55 * np.log(0.55) + 0.45 * np.log(0.45)) / np.log(2)
    assert row.observed_entropy == pytest.approx(h)
    assert row.entropy == pytest.approx(1.0)
    assert row.ci_low < row.entropy <= row.ci_high <= 1.0


def test_no_confusion_no_corrected_table():
    suite = suite_from_dict({"name": "c", "prompts": [{"id": "p", "text": "a"}]})
    obs = pd.DataFrame([("m", "p", 0, 0, "gender", "Male")],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    frame = BiasFrame(obs, suite=suite, n_boot=0)
    assert frame.corrected is None and frame.corrected_entropy is None


def test_measure_run_uses_the_runs_validation_confusion_table(tmp_path):
    from biaskit.metrics import measure_run
    from biaskit.tables import write_table

    suite = suite_from_dict({"name": "c", "prompts": [{"id": "p", "text": "a"}]})
    obs = pd.DataFrame({"model": "m", "prompt_id": "p", "sample": range(20), "person": 0,
                        "attribute": "gender", "label": ["Male"] * 18 + ["Female"] * 2})
    write_table(obs, tmp_path / "observations.parquet")
    measure_run(tmp_path, suite=suite, n_boot=50)
    assert not (tmp_path / "metrics" / "corrected_overall.parquet").exists()
    confusion = pd.DataFrame([("gender", "Male", "Male", 90), ("gender", "Male", "Female", 10),
                              ("gender", "Female", "Female", 95), ("gender", "Female", "Male", 5)],
                             columns=["attribute", "true", "predicted", "count"])
    write_table(confusion, tmp_path / "validation" / "confusion.parquet")
    bias = measure_run(tmp_path, suite=suite, n_boot=50)
    overall = pd.read_parquet(tmp_path / "metrics" / "corrected_overall.parquet")
    assert overall.n_validation.iloc[0] == 200
    assert overall.validation_accuracy.iloc[0] == pytest.approx(185 / 200)
    assert bias.corrected_overall is not None
    from biaskit.tables import read_correction  # recorded for the report to name
    assert read_correction(tmp_path / "metrics") == str(tmp_path / "validation" / "confusion.parquet")
    # no_confusion (`biaskit run --no-confusion`) keeps the run's own table out.
    measure_run(tmp_path, suite=suite, n_boot=50, no_confusion=True, out=tmp_path / "plain")
    assert not (tmp_path / "plain" / "corrected_overall.parquet").exists()
    assert read_correction(tmp_path / "plain") is None


def two_model_frame(confusion):
    """Models 'a' and 'b', one prompt of 40 one-person images each, tagged 26 Male / 14 Female."""
    suite = suite_from_dict({"name": "c", "prompts": [{"id": "p", "text": "a"}]})
    labels = ["Male"] * 26 + ["Female"] * 14
    obs = pd.concat([pd.DataFrame({"model": model, "prompt_id": "p", "sample": range(40),
                                   "person": 0, "attribute": "gender", "label": labels})
                     for model in ("a", "b")], ignore_index=True)
    return BiasFrame(obs, suite=suite, n_boot=200, seed=0, confusion=confusion)


def gender_table(counts, model=None):
    """A tidy gender confusion table from a 2 x 2 count matrix (rows true Male, Female)."""
    labels = ("Male", "Female")
    table = pd.DataFrame([("gender", labels[i], labels[j], counts[i][j]) for i in range(2)
                          for j in range(2)], columns=["attribute", "true", "predicted", "count"])
    return table if model is None else table.assign(model=model)


POOLED, OWN_A = [[90, 10], [20, 80]], [[70, 30], [10, 90]]


def test_a_model_with_its_own_confusion_table_is_corrected_with_it():
    from biaskit.metrics.correction import validation_sources

    confusion = pd.concat([gender_table(POOLED), gender_table(OWN_A, model="a")], ignore_index=True)
    frame = two_model_frame(confusion)
    sources, source = validation_sources(frame, "gender", confusion)
    assert [s.tolist() for s in sources] == [OWN_A, POOLED] and source.tolist() == [0, 1]
    shares = frame.corrected.pivot(index="model", columns="label", values="share")
    q = np.array([26, 14]) / 40
    for model, counts in (("a", OWN_A), ("b", POOLED)):
        matrix = np.array(counts, float) / np.sum(counts, axis=1, keepdims=True)
        expected = np.linalg.solve(matrix.T, q)  # inside [0, 1]: the maximum-likelihood estimate
        assert shares.loc[model, ["Male", "Female"]].to_numpy() == pytest.approx(expected)
    overall = frame.corrected_overall.set_index("model")
    assert overall.loc["a", "validation_accuracy"] == pytest.approx(160 / 200)
    assert overall.loc["b", "validation_accuracy"] == pytest.approx(170 / 200)
    assert overall.n_validation.tolist() == [200, 200]
    # Without the per-model rows both models get the pooled correction.
    pooled = two_model_frame(gender_table(POOLED)).corrected
    pooled = pooled.pivot(index="model", columns="label", values="share")
    assert pooled.loc["a"].to_numpy() == pytest.approx(shares.loc["b"].to_numpy())


def test_measure_run_reads_the_per_model_table_beside_the_pooled_one(tmp_path):
    from biaskit.metrics.run import confusion_table
    from biaskit.tables import write_table

    write_table(gender_table(POOLED), tmp_path / "confusion.parquet")
    assert "model" not in confusion_table(tmp_path / "confusion.parquet").columns
    write_table(gender_table(OWN_A, model="a"), tmp_path / "confusion_by_model.parquet")
    table = confusion_table(tmp_path / "confusion.parquet")
    assert len(table) == 8 and table["model"].fillna("").tolist() == [""] * 4 + ["a"] * 4
    assert confusion_table(table) is table  # a DataFrame is used as given


def test_measure_cli_corrects_a_model_with_its_own_table(tmp_path):
    import yaml

    from biaskit.cli import main

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "c", "prompts": [{"id": "p", "text": "a"}]}))
    labels = ["Male"] * 26 + ["Female"] * 14
    pd.concat([pd.DataFrame({"model": model, "prompt_id": "p", "sample": range(40), "person": 0,
                             "attribute": "gender", "label": labels}) for model in ("a", "b")]
              ).to_csv(tmp_path / "obs.csv", index=False)
    gender_table(POOLED).to_csv(tmp_path / "confusion.csv", index=False)
    gender_table(OWN_A, model="a").to_csv(tmp_path / "confusion_by_model.csv", index=False)
    assert main(["measure", str(tmp_path / "obs.csv"), "--prompts", str(suite), "--confusion",
                 str(tmp_path / "confusion.csv"), "--n-boot", "50", "--out", str(tmp_path / "m")]) == 0
    overall = pd.read_csv(tmp_path / "m" / "corrected_overall.csv").set_index("model")
    assert overall.loc["a", "validation_accuracy"] == pytest.approx(160 / 200)
    assert overall.loc["b", "validation_accuracy"] == pytest.approx(170 / 200)


def _closed_form_unmix(x, n, C):
    """Two categories: the true share of category 0 from ``x`` of ``n`` tagged 0, clipped."""
    return np.clip((x / n - C[1, 0]) / (C[0, 0] - C[1, 0]), 0.0, 1.0)


def _binary_entropy(p):
    from scipy.stats import entropy
    return np.array([entropy([v, 1 - v], base=2) for v in np.atleast_1d(p)])


def test_double_bootstrap_bias_of_corrected_entropy_matches_exact_enumeration():
    """The mean of the point-estimate pivots is ``2 b(p) - E b(p**)``, with ``b`` the corrected
    entropy's bias, enumerated exactly over binomial outcomes (scipy) for 2 categories."""
    from scipy.stats import binom
    from biaskit.metrics.correction import point_entropy_pivots

    C = np.array([[0.9, 0.1], [0.2, 0.8]])
    p, n, b, g = 0.7, 12, 4000, 8
    xs = np.arange(n + 1)

    def bias(share):
        weights = binom.pmf(xs, n, share * C[0, 0] + (1 - share) * C[1, 0])
        return weights @ _binary_entropy(_closed_form_unmix(xs, n, C)) - _binary_entropy(share)[0]

    outer = binom.pmf(xs, n, p * C[0, 0] + (1 - p) * C[1, 0])
    inner = outer @ np.array([bias(s) for s in _closed_form_unmix(xs, n, C)])
    expected = 2 * bias(p) - inner
    matrices = np.broadcast_to(C, (b, 2, 2))
    # A validation set so large that its redraws equal C: the draws see a known tagger.
    pivots = point_entropy_pivots(np.tile([p, 1 - p], (g, 1)), np.full(g, n), matrices, matrices,
                                  np.full(2, 10**9), rng=np.random.default_rng(3))
    assert abs(bias(p)) > 0.02 and abs(expected - bias(p)) > 0.01  # the extrapolation matters
    assert pivots.mean() == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("sign", [-1, 1])
def test_bias_aware_interval_extends_only_the_side_the_bias_points_to(sign):
    from biaskit.metrics.correction import bias_aware_interval

    pivots = np.random.default_rng(0).normal(sign * 0.05, 0.02, 4000)
    low, high = bias_aware_interval(0.8, (0.78, 0.82), pivots, confidence=0.95)
    if sign < 0:  # reads low: the upper bound rises to point - q_2.5 %, the lower one stays
        assert (low, high) == (0.78, pytest.approx(0.8 - np.quantile(pivots, 0.025)))
    else:
        assert (low, high) == (pytest.approx(0.8 - np.quantile(pivots, 0.975)), 0.82)
