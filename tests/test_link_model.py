"""The link model: its fitting gives calibrated probabilities on data it was not fitted on, the shipped model's
recorded held-out figures on real histories meet the bar, and a model file that does not fit says so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.linking.features import FEATURES
from engine.linking.model import LinkModel, LinkModelError, load_model

pytestmark = pytest.mark.slow
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)


def _all_links(labelled, probability, top_k=3):
    """(confidence, right) of every (commit, source id) link among each commit's top_k, documents included."""
    order = np.lexsort((-probability, labelled.rows))
    links: dict[tuple[str, str], float] = {}
    last, count = None, 0
    for position in order:
        count = count + 1 if labelled.rows[position] == last else 1
        last = labelled.rows[position]
        if count <= top_k:
            sha = labelled.shas[labelled.rows[position]]
            for source in labelled.item_sources[labelled.cols[position]]:
                links[(sha, source)] = max(links.get((sha, source), -1.0), float(probability[position]))
    right = np.array([source in labelled.truth.get(sha, set()) for sha, source in links])
    return np.array(list(links.values())), right


def test_fitting_gives_calibrated_confidences_on_a_world_it_did_not_see(tmp_path):
    from bench.link_model import fit_model, load_set, reliability
    from tests.linking_fixtures import build_labelled_world

    worlds = [load_set(build_labelled_world(tmp_path / f"world-{seed}", commits=30, seed=seed).config.parent)
              for seed in (41, 42)]
    worlds[0].repository, worlds[1].repository = "world-41", "world-42"
    model = fit_model([worlds[0]])
    held_out = worlds[1]
    probability, _ = model.predict(held_out.rows, held_out.cols, held_out.features)
    confidence, right = _all_links(held_out, probability)
    assert right.sum() > 30 and (~right).sum() > 30  # both kinds of links are there to be judged
    for threshold in THRESHOLDS:
        chosen = confidence >= threshold
        assert chosen.sum() > 10 and right[chosen].mean() >= threshold, threshold
    ece = sum(row["links"] / len(confidence) * abs(row["confidence"] - row["precision"])
              for row in reliability(confidence, right))
    assert ece <= 0.05
    # and the fitted model survives its file format
    again = LinkModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict(held_out.rows, held_out.cols, held_out.features)[0], probability,
                               atol=1e-6)


def test_the_shipped_model_was_judged_on_real_histories_it_was_not_trained_on():
    model = load_model()
    held_out = model.info["held_out"]
    repositories = {row["set"].rsplit(" ", 1)[0] for row in held_out}
    assert len(repositories) >= 3 and {row["set"].rsplit(" ", 1)[1] for row in held_out} == {"refs", "stripped"}
    for row in held_out:
        assert row["precision"] >= 0.85 and row["ece"] <= 0.05, row
        for threshold in THRESHOLDS:
            if row[f"n@{threshold}"]:
                assert row[f"p@{threshold}"] >= threshold, (row["set"], threshold)
    reliability = model.info["reliability"]
    assert sum(bin_["links"] for bin_ in reliability) > 1000
    assert set(model.modes) == {"semantic", "hybrid"}


def test_a_model_file_for_other_features_or_a_broken_one_says_how_to_fix_it(tmp_path):
    data = load_model().to_dict()
    data["features"] = list(FEATURES[:-1])
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(LinkModelError, match="other features .* retrain it with `python -m bench link_model train`"):
        load_model(tmp_path / "old.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(LinkModelError, match="cannot be read"):
        load_model(tmp_path / "broken.json")
    with pytest.raises(LinkModelError, match="is missing"):
        load_model(tmp_path / "absent.json")
