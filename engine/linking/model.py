"""The link model: from a candidate's features to the probability that the link is right.

A logistic regression, a small ensemble of gradient-boosted trees and a calibration map, shipped as one JSON file
(`link_model.json`) and evaluated in numpy, so linking needs neither scikit-learn nor the labelled sets it was
trained on:
1. stage 1, a logistic regression, weighs the absolute evidence (engine.linking.features.FEATURES);
2. stage 2, shallow boosted trees, adds how the candidate compares with the other candidates of its commit and of
   its item (RELATIVE_FEATURES of the stage-1 score): a page belongs to the one commit it explains best. Trees
   because the evidence interacts (a moderate cosine means much when the page is this commit's best and this commit
   the page's best, little otherwise); measured leave-one-repository-out on seven real histories they found more of
   the issue-style commits than a second logistic regression at the same precision (bench/RESULTS.md);
3. an isotonic map turns the stage-2 score into a calibrated probability: among links at confidence c, about c
   are right (fitted on out-of-fold predictions, never on the predictions of a model that saw the same commits).
The seeds' own modes (`semantic`, `hybrid`) keep their scores and get a calibration map each, so min_confidence
means the same thing in every mode.

`python -m bench link_model train SET...` refits it from labelled sets (scikit-learn); see bench/link_model.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import StudioError
from engine.linking.features import FEATURES, RELATIVE_FEATURES, relative_features, sigmoid

MODEL_FILE = Path(__file__).with_name("link_model.json")
FORMAT_VERSION = 2


class LinkModelError(StudioError):
    """The link model file is missing or does not fit this version of the studio."""


@dataclass
class Logistic:
    """A standardized logistic regression: sigmoid(((x - mean) / scale) . coef + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def score(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept

    def to_dict(self) -> dict:
        return {"mean": _rounded(self.mean), "scale": _rounded(self.scale), "coef": _rounded(self.coef),
                "intercept": round(float(self.intercept), 8)}

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(np.asarray(data["mean"], float), np.asarray(data["scale"], float), np.asarray(data["coef"], float),
                   float(data["intercept"]))


@dataclass
class Trees:
    """Gradient-boosted regression trees: sum of leaf values plus a baseline is the log-odds. Each tree is arrays
    over its nodes: feature, threshold (go left when x <= threshold), left, right, is_leaf, value."""

    baseline: float
    trees: list[dict[str, np.ndarray]]

    def score(self, features: np.ndarray) -> np.ndarray:
        total = np.full(len(features), self.baseline, dtype=np.float64)
        rows = np.arange(len(features))
        for tree in self.trees:
            node = np.zeros(len(features), dtype=np.int64)
            while True:
                inner = ~tree["is_leaf"][node]
                if not inner.any():
                    break
                at = node[inner]
                go_left = features[rows[inner], tree["feature"][at]] <= tree["threshold"][at]
                node[inner] = np.where(go_left, tree["left"][at], tree["right"][at])
            total += tree["value"][node]
        return total

    def to_dict(self) -> dict:
        return {"baseline": round(float(self.baseline), 8),
                "trees": [{"feature": tree["feature"].tolist(), "threshold": _rounded(tree["threshold"]),
                           "left": tree["left"].tolist(), "right": tree["right"].tolist(),
                           "is_leaf": [int(value) for value in tree["is_leaf"]], "value": _rounded(tree["value"])}
                          for tree in self.trees]}

    @classmethod
    def from_dict(cls, data: dict) -> Trees:
        return cls(float(data["baseline"]), [
            {"feature": np.asarray(tree["feature"], np.int64), "threshold": np.asarray(tree["threshold"], float),
             "left": np.asarray(tree["left"], np.int64), "right": np.asarray(tree["right"], np.int64),
             "is_leaf": np.asarray(tree["is_leaf"], bool), "value": np.asarray(tree["value"], float)}
            for tree in data["trees"]])


def _stage_from_dict(data: dict) -> Logistic | Trees:
    return Trees.from_dict(data) if "trees" in data else Logistic.from_dict(data)


@dataclass
class Calibration:
    """A monotone map from a raw score to a probability (isotonic regression's breakpoints, interpolated)."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if not len(self.x):
            return np.clip(raw, 0.0, 1.0)
        return np.interp(raw, self.x, self.y)

    def to_dict(self) -> dict:
        return {"x": _rounded(self.x), "y": _rounded(self.y)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(np.asarray(data["x"], float), np.asarray(data["y"], float))


@dataclass
class LinkModel:
    stage1: Logistic
    stage2: Logistic | Trees
    calibration: Calibration
    modes: dict[str, Calibration] = field(default_factory=dict)  # semantic / hybrid raw score -> probability
    info: dict = field(default_factory=dict)  # what it was trained on, when, and its leave-one-set-out figures

    def predict(self, rows: np.ndarray, cols: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, stage-2 score) of every candidate; rows/cols say which commit and item each one is."""
        if not len(rows):
            return np.zeros(0), np.zeros(0)
        first = self.stage1.score(features)
        second = self.stage2.score(np.column_stack([features, relative_features(rows, cols, first)]))
        return self.calibration(sigmoid(second)), second

    def calibrate_mode(self, mode: str, raw: np.ndarray) -> np.ndarray:
        if mode not in self.modes:
            raise LinkModelError(f"The link model has no calibration for mode {mode!r}; retrain it with "
                                 "`python -m bench link_model train`.")
        return self.modes[mode](raw)

    def to_dict(self) -> dict:
        return {"format": FORMAT_VERSION, "features": list(FEATURES), "relative_features": list(RELATIVE_FEATURES),
                "stage1": self.stage1.to_dict(), "stage2": self.stage2.to_dict(),
                "calibration": self.calibration.to_dict(),
                "modes": {name: calibration.to_dict() for name, calibration in self.modes.items()},
                "info": self.info}

    def save(self, path: Path = MODEL_FILE) -> Path:
        from engine.files import write_atomic

        write_atomic(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict, source: str = "the link model") -> LinkModel:
        if data.get("format") != FORMAT_VERSION or list(data.get("features", [])) != list(FEATURES) or list(
                data.get("relative_features", [])) != list(RELATIVE_FEATURES):
            raise LinkModelError(f"{source} was trained for other features than this version computes; retrain it "
                                 "with `python -m bench link_model train`.")
        return cls(Logistic.from_dict(data["stage1"]), _stage_from_dict(data["stage2"]),
                   Calibration.from_dict(data["calibration"]),
                   {name: Calibration.from_dict(value) for name, value in data.get("modes", {}).items()},
                   data.get("info", {}))


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> LinkModel:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LinkModelError(f"The link model {path} cannot be read ({exc}); reinstall the studio or retrain it "
                             "with `python -m bench link_model train`.") from None
    return LinkModel.from_dict(data, str(path))


def load_model(path: str | Path | None = None) -> LinkModel:
    """The shipped link model (or another file); cached until the file changes."""
    path = Path(path or MODEL_FILE)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise LinkModelError(f"The link model {path} is missing; reinstall the studio or train one with "
                             "`python -m bench link_model train`.") from None
    return _load(str(path), mtime)


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(value), 8) for value in np.asarray(values).ravel()]
