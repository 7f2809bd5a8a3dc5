"""Which links count at a threshold: the one rule, in a module of its own so the dataset stage and the pages can
ask it without importing the linker."""

from __future__ import annotations

import numpy as np


def passes(rank, confidence, min_confidence: float, top_k: int):
    """Whether a link counts at this threshold: among its commit's top_k (rank <= top_k) and confidence >=
    min_confidence. The one rule: pairs, counts, evaluation and the Linking page all ask it. Confidences compare
    as float32 (how a run's links are loaded), so a link exactly at the threshold is kept everywhere. Takes
    scalars or arrays; returns a bool or a mask."""
    return (np.asarray(rank) <= top_k) & (np.asarray(confidence, dtype=np.float32) >= np.float32(min_confidence))
