"""Review: one queue over every example source (linked pairs of the validated files, collected commit / doc /
conversation / linked examples, held widget examples), each reviewer's answers, agreement between reviewers,
conflicts and, for owners, the review settings (answers wanted per item, guidelines)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.config import PipelineConfig
from engine.dataset.queue import SOURCE_LABELS
from engine.dataset.review import (
    MAX_ANSWERS_PER_ITEM,
    agreement,
    record_decision,
    review_settings,
    save_review_settings,
)
from engine.errors import StudioError
from engine.settings import active_config_path, active_workspace
from engine.store import Workspace
from views.access import action_submit, allowed, can, member
from views.review_panel import queue_items, review_panel, show_item
from views.ui import code_span, escape_markdown

st.title("Review")
config_path = active_config_path()
try:
    min_confidence = PipelineConfig.load(config_path).min_confidence
except StudioError:
    min_confidence = 0.6
try:
    workspace = Workspace.open(active_workspace(config_path))
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.caption(f"Workspace: {code_span(workspace.root)} · reviewing as {escape_markdown(member().identity)} "
           f"({member().role})")

try:
    items = queue_items(workspace, None, min_confidence)
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
settings = review_settings(workspace)
if settings.guidelines:
    with st.expander("Guidelines", expanded=False):
        st.text(settings.guidelines)

queue_tab, conflicts_tab, agreement_tab, settings_tab = st.tabs(
    ["Queue", "Conflicts", "Agreement", "Settings"], key="review_tab", on_change="rerun")

if queue_tab.open:
    with queue_tab:
        st.caption(f"{len(items):,} items from every source · {settings.answers_per_item} answer"
                   f"{'s' if settings.answers_per_item != 1 else ''} wanted per item · sources: "
                   + ", ".join(f"{SOURCE_LABELS[source]} {sum(item.source == source for item in items):,}"
                               for source in SOURCE_LABELS if any(item.source == source for item in items)))
        review_panel(workspace, items, "review")

if conflicts_tab.open:
    with conflicts_tab:
        conflicts = [item for item in items if item.state == "conflict"]
        if not conflicts:
            st.success("No item is in conflict: every item answered by several reviewers got the same answer.")
        else:
            st.write(f"{len(conflicts):,} items where reviewers disagree. They stay out of every export until the "
                     "reviewers agree or an owner settles them.")
            reviewers = sorted({answer.reviewer for item in conflicts for answer in item.status.answers.values()})
            st.dataframe(pd.DataFrame([{"item": item.origin, "findings": ", ".join(item.kinds) or "-",
                                        **{name: item.answer_of(name) or "" for name in reviewers}}
                                       for item in conflicts]), hide_index=True, key="conflicts_table",
                         width="stretch")
            by_key = {item.key: item for item in conflicts}
            chosen = st.selectbox("Conflict", list(by_key), format_func=lambda key: by_key[key].origin,
                                  key="conflict_pick")
            show_item(by_key[chosen])
            if can("change"):
                with st.form("settle"):
                    decision = st.radio("Settle as", ["good", "bad", "redact"], horizontal=True, key="settle_as")
                    if action_submit("Settle", help="Your decision replaces the conflict; the answers stay."):
                        record_decision(workspace, chosen, decision, member().identity,
                                        dataset=by_key[chosen].dataset, pair_index=by_key[chosen].index,
                                        settles=True)
                        st.rerun()
            else:
                st.caption("Only an owner can settle a conflict; reviewers can change their own answers.")

if agreement_tab.open:
    with agreement_tab:
        found = agreement(item.status for item in items if item.status)
        left, middle, right = st.columns(3)
        left.metric("Items with two or more answers", f"{found.items:,}")
        middle.metric("Agreement", "-" if found.percent is None else f"{found.percent:.1f}%",
                      help="Share of those items where every answer is the same (skips aside).")
        right.metric("Cohen's kappa", "-" if found.kappa is None else f"{found.kappa:.3f}",
                     help=f"Over the {found.two_answer_items:,} items with exactly two answers; undefined when "
                          "every answer is the same category.")
        if found.pairs:
            st.dataframe(pd.DataFrame([{"reviewer": pair.first, "and": pair.second, "items": pair.items,
                                        "agreement %": pair.percent,
                                        "kappa": None if pair.kappa is None else round(pair.kappa, 3)}
                                       for pair in found.pairs]), hide_index=True, key="agreement_pairs",
                         width="stretch")
        else:
            st.caption("No item has two answers yet.")

if settings_tab.open:
    with settings_tab:
        with st.form("review_settings"):
            answers = st.number_input("Answers wanted per item", 1, MAX_ANSWERS_PER_ITEM, settings.answers_per_item,
                                      key="answers_per_item", disabled=not can("change"),
                                      help="An item takes a status once this many reviewers gave the same answer; "
                                           "disagreement is a conflict.")
            guidelines = st.text_area("Guidelines (plain text)", settings.guidelines, height=200,
                                      key="guidelines", disabled=not can("change"))
            if action_submit("Save settings") and allowed("change"):
                try:
                    save_review_settings(workspace, member().identity, answers_per_item=int(answers),
                                         guidelines=guidelines)
                except StudioError as exc:
                    st.error(escape_markdown(str(exc)))
                else:
                    st.rerun()
