"""The metric definitions of measures.py on tiny hand-worked runs."""

import warnings

import pandas as pd
import pytest

from biaskit.metrics import BiasFrame
from biaskit.suite import suite_from_dict

COLUMNS = ["model", "prompt_id", "sample", "person", "attribute", "label"]
SUITE = suite_from_dict({"name": "m", "prompts": [
    {"id": "lone", "text": "a person"}, {"id": "pair", "text": "a person"},
    {"id": "unseen", "text": "a person"}, {"id": "judge", "text": "a judge", "kind": "ahistorical",
                                            "expected": {"gender": "Female"}}]})
# lone: one image, one Male; pair: a Male and a Female image; unseen: one unclear person;
# judge: 3 Female and 1 Male image, expected Female
OBS = pd.DataFrame(
    [("m", "lone", 0, 0, "gender", "Male"),
     ("m", "pair", 0, 0, "gender", "Male"), ("m", "pair", 1, 0, "gender", "Female"),
     ("m", "unseen", 0, 0, "gender", "unclear")]
    + [("m", "judge", s, 0, "gender", label) for s, label in enumerate(["Female"] * 3 + ["Male"])],
    columns=COLUMNS)


@pytest.fixture(scope="module")
def bias():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt with no known label divides by 0 nowhere
        frame = BiasFrame(OBS, suite=SUITE, n_boot=50, seed=0)
        return frame, frame.summary.set_index("prompt_id"), frame.overall.set_index("kind")


def test_one_known_person_is_a_homogeneous_prompt_not_a_missing_one(bias):
    _, _, overall = bias
    # lone (1 label) and pair (2 labels) count, unseen (no known label) does not: HOF = 1 / 2
    assert overall.loc["individual", "hof"] == pytest.approx(0.5)
    assert overall.loc["individual", "n_prompts"] == 2


def test_match_rate_and_shares_by_hand_with_no_warning_for_an_unseen_prompt(bias):
    frame, summary, _ = bias
    assert summary.loc["judge", "match_rate"] == pytest.approx(0.75)
    assert summary[["match_rate"]].drop(index="judge").isna().all().all()
    shares = frame.distribution.set_index(["prompt_id", "label"])["share"]
    assert shares[("pair", "Female")] == pytest.approx(0.5) and shares[("lone", "Male")] == 1.0
    assert shares.loc["unseen"].isna().all()
