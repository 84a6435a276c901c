"""A tagger's accuracy against reference labels, as tables: one definition for every path.

``biaskit validate`` (a labelled face folder) and ``biaskit annotate import``
(people's labels of a sample of the run's own faces) both reduce to a
predictions table -- one row per face and attribute with the reference label
``true``, the tagger's ``predicted`` label (``"unclear"`` when it abstained) and
the face's sampling ``weight`` -- and both write the tables built here, so the
two are read the same way by ``biaskit measure`` and the report.

Weights are design weights (the inverse of each face's inclusion probability
in the annotation sample; 1 for a labelled folder).  With weights ``w``:

* a proportion is ``sum(w * hit) / sum(w)``, the estimate of the share among
  all the faces the sample was drawn from;
* its Wilson interval uses Kish's effective sample size
  ``n_eff = (sum w)^2 / sum(w^2)`` in place of ``n`` (equal weights give the
  ordinary Wilson interval);
* the confusion table holds the weighted counts rescaled (one factor per
  attribute) to sum to the attribute's ``n_eff``: the table is then the
  design-unbiased estimate of the joint distribution of (true, predicted)
  over all the faces, so ``P(predicted | true)``, the accuracy and the true
  label shares read from it are those of the population, and its size states
  how much information it carries (the correction resamples each true-label
  row from a multinomial of the row's total).  With equal weights the counts
  are the raw counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.tables import CONFUSION_COLUMNS
from biaskit.taxonomy import UNCLEAR

CONFIDENCE_LEVEL = 0.95
PREDICTION_COLUMNS = ("file", "attribute", "true", "predicted", "confidence", "tagger", "weight")
SUMMARY_COLUMNS = ("attribute", "tagger", "n", "n_unclear", "n_correct", "n_effective", "accuracy",
                   "ci_low", "ci_high", "accuracy_all", "unclear_rate")
RECALL_COLUMNS = ("attribute", "true", "n", "n_correct", "n_unclear", "recall", "ci_low", "ci_high",
                  "unclear_rate")
PRECISION_COLUMNS = ("attribute", "predicted", "n", "n_correct", "precision", "ci_low", "ci_high")


def wilson_interval(successes, trials, *, level: float = CONFIDENCE_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (NaN where ``trials`` is 0).

    ``trials`` may be an effective (non-integer) sample size, ``successes`` the
    matching share times it.
    """
    from scipy.stats import norm

    k, n = np.asarray(successes, float), np.asarray(trials, float)
    z = norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.where(n > 0, centre - half, np.nan), np.where(n > 0, centre + half, np.nan)


def weighted_share(hits, weights) -> tuple[float, float, float, float]:
    """``(share, ci_low, ci_high, n_effective)`` of a 0/1 array under design weights."""
    hits, weights = np.asarray(hits, float), np.asarray(weights, float)
    total = weights.sum()
    if total <= 0:
        return np.nan, np.nan, np.nan, 0.0
    share = float((weights * hits).sum() / total)
    n_eff = float(total**2 / (weights**2).sum())
    low, high = wilson_interval(share * n_eff, n_eff)
    return share, float(low), float(high), n_eff


def _weights(group: pd.DataFrame) -> np.ndarray:
    return group["weight"].to_numpy(float) if "weight" in group else np.ones(len(group))


def summary_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per attribute and tagger: among known predictions, and counting abstentions as errors."""
    rows = []
    for (attribute, tagger), group in predictions.groupby(["attribute", "tagger"], sort=False):
        weights = _weights(group)
        unclear = (group["predicted"] == UNCLEAR).to_numpy()
        correct = (group["predicted"] == group["true"]).to_numpy()
        accuracy, low, high, n_eff = weighted_share(correct[~unclear], weights[~unclear])
        rows.append(dict(attribute=attribute, tagger=tagger, n=len(group), n_unclear=int(unclear.sum()),
                         n_correct=int(correct.sum()), n_effective=n_eff, accuracy=accuracy,
                         ci_low=low, ci_high=high,
                         accuracy_all=weighted_share(correct, weights)[0],
                         unclear_rate=weighted_share(unclear, weights)[0]))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _per_label(predictions: pd.DataFrame, *, by: str):
    """(attribute, label, its rows, their weights, which are right) for every taxonomy label of ``by``."""
    for attribute, group in predictions.groupby("attribute", sort=False):
        for label in taxonomy.labels(attribute):
            rows = group[group[by] == label]
            yield attribute, label, rows, _weights(rows), (rows["predicted"] == rows["true"]).to_numpy()


def recall_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per true label: the share predicted right (recall), with its interval, and the unclear rate."""
    rows = []
    for attribute, label, of_class, weights, correct in _per_label(predictions, by="true"):
        unclear = (of_class["predicted"] == UNCLEAR).to_numpy()
        recall, low, high, _ = weighted_share(correct, weights)
        rows.append(dict(attribute=attribute, true=label, n=len(of_class), n_correct=int(correct.sum()),
                         n_unclear=int(unclear.sum()), recall=recall, ci_low=low, ci_high=high,
                         unclear_rate=weighted_share(unclear, weights)[0]))
    return pd.DataFrame(rows, columns=list(RECALL_COLUMNS))


def precision_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per predicted label: the share the reference confirms (the tagger's accuracy on that label)."""
    rows = []
    for attribute, label, given, weights, correct in _per_label(predictions, by="predicted"):
        precision, low, high, _ = weighted_share(correct, weights)
        rows.append(dict(attribute=attribute, predicted=label, n=len(given), n_correct=int(correct.sum()),
                         precision=precision, ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=list(PRECISION_COLUMNS))


def confusion_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Tidy confusion table: every true x (predicted + unclear) pair, zeros included.

    Counts are raw when every weight is 1, else design-weighted and rescaled to
    the attribute's effective sample size (see the module docstring).
    """
    frames = []
    for attribute, group in predictions.groupby("attribute", sort=False):
        categories = list(taxonomy.labels(attribute))
        weights = pd.Series(_weights(group), index=group.index)
        group = group[group["true"].isin(categories)]
        weights = weights.loc[group.index]
        scaled = weights * (weights.sum() / (weights**2).sum() if len(weights) else 0.0)  # sums to n_eff
        counts = scaled.groupby([group["true"], group["predicted"]]).sum().unstack(fill_value=0.0)
        counts = counts.reindex(index=categories, columns=categories + [UNCLEAR], fill_value=0.0)
        tidy = counts.rename_axis(index="true", columns="predicted").stack().rename("count").reset_index()
        frames.append(tidy.assign(attribute=attribute))
    if not frames:
        return pd.DataFrame(columns=list(CONFUSION_COLUMNS))
    confusion = pd.concat(frames, ignore_index=True)[list(CONFUSION_COLUMNS)]
    counts = confusion["count"].astype(float)
    rounded = counts.round()
    confusion["count"] = rounded.astype("int64") if np.allclose(counts, rounded) else counts
    return confusion
