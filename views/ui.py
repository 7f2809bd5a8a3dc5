"""Small widgets the pages share (a view module, not a page: app.py does not route it)."""

from __future__ import annotations

import streamlit as st

from engine.progress import ProgressFn


def progress_bar(text: str = "Starting ...") -> tuple[st.delta_generator.DeltaGenerator, ProgressFn]:
    """An st.progress bar and the engine ProgressFn that drives it (stage, done of total)."""
    bar = st.progress(0.0, text=text)

    def show(stage: str, done: int, total: int | None) -> None:
        if total:
            bar.progress(min(1.0, done / total), text=f"{stage}: {done:,} of {total:,}")
        else:
            bar.progress(0.0, text=f"{stage}: {done:,}")

    return bar, show
