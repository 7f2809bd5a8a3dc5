"""Validation: the report on a training_data.jsonl, the review of its queued pairs (the Review page's panel, scoped
to this file: raw text with findings masked in place, answers bound to the pair on screen), and export of the
cleaned dataset as an mlx-lm folder."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from engine.config import PipelineConfig
from engine.dataset.export import export_dataset
from engine.dataset.sensitive import KINDS
from engine.dataset.validate import save_uploaded_dataset, training_data_exists, validate_dataset
from engine.errors import StudioError
from engine.records import TIERS
from engine.settings import active_config_path, active_workspace
from engine.store import Workspace
from views.access import action_button, can, refusal
from views.review_panel import queue_items, review_panel
from views.ui import code_span, escape_markdown

st.title("Validation")

config_path = active_config_path()
default_input, min_confidence = "", 0.6
try:
    config = PipelineConfig.load(config_path)
    default_input, min_confidence = str(config.output_file), float(config.min_confidence)
except StudioError:
    config = None
try:
    workspace = Workspace.open(active_workspace(config_path))
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.caption(f"Workspace: {code_span(workspace.root)}")

left, right = st.columns([3, 1])
input_path = left.text_input("Training data (JSONL)", value=default_input, key="input_path",
                             help="Defaults to paths.output_file of the active config (what linking writes).")
right.metric("min_confidence", f"{min_confidence:g}",
             help="The linking threshold saved in the config (set it on the Linking page): a confidence is the "
                  "probability that a link is right, and pairs linked below it are demoted to a lower tier.")
upload = st.file_uploader("…or upload a JSONL", type=["jsonl"], key="upload", disabled=not can("change"),
                          help=None if can("change") else refusal("change"))
if upload is not None and can("change"):
    # Saved once per uploaded file (not on every rerun), so the file, its queue and the pair on screen stay put.
    saved = st.session_state.get("uploaded")
    if not saved or saved[0] != upload.file_id:
        try:
            saved = (upload.file_id, str(save_uploaded_dataset(workspace, upload.name, upload.getvalue())))
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
            st.stop()
        st.session_state["uploaded"] = saved
    input_path = saved[1]
    st.caption(f"Uploaded to {code_span(input_path)}")

if not input_path or not training_data_exists(input_path):
    st.info(f"No training data at {code_span(input_path or '(none)')} yet. Run linking on the Linking page (it "
            "writes paths.output_file), type the path of a training_data.jsonl above, or upload one.")
    st.stop()

run_key = ("validated", input_path)
try:
    report, analysis = validate_dataset(input_path, workspace, min_confidence=min_confidence,
                                        record_run=run_key not in st.session_state)
except StudioError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.session_state[run_key] = True

# Keyed and rerun on change: the tab a person is on survives an upload (and any other rerun), and hidden tabs cost
# nothing.
report_tab, review_tab, export_tab = st.tabs(["Report", "Review queue", "Export"], key="validation_tab",
                                             on_change="rerun")


def show_report() -> None:
    columns = st.columns(5)
    columns[0].metric("Lines", f"{report.total_lines:,}")
    columns[1].metric("Valid pairs", f"{report.valid_pairs:,}")
    columns[2].metric("Usable pairs", f"{report.usable_pairs:,}")
    columns[3].metric("Tokens", f"{report.total_tokens:,}", help=escape_markdown(report.tokenizer))
    columns[4].metric("Unresolved sensitive", f"{report.unresolved_pairs:,}")
    for line in report.recommendations:
        (st.warning if line.startswith("⚠") else st.success)(escape_markdown(line.lstrip("⚠✓ ")))

    chart_left, chart_right = st.columns(2)
    with chart_left:
        st.subheader("Confidence distribution")
        if report.distribution:
            frame = pd.DataFrame(report.distribution)
            st.altair_chart(alt.Chart(frame).mark_bar().encode(
                x=alt.X("bucket:N", title="confidence", sort=None), y=alt.Y("pairs:Q", title="pairs"),
                tooltip=["bucket", "pairs", "percent"]), width="stretch")
        else:
            st.caption("No pair carries a link confidence.")
    with chart_right:
        st.subheader("Quality tiers")
        tiers = pd.DataFrame({"tier": list(report.tiers), "pairs": list(report.tiers.values())})
        st.altair_chart(alt.Chart(tiers).mark_bar().encode(
            x=alt.X("tier:N", sort=list(TIERS)), y="pairs:Q", tooltip=["tier", "pairs"]), width="stretch")

    st.subheader("Sensitive data")
    sensitive = report.sensitive
    st.write(f"{sensitive['pairs_with_findings']} pairs with {sensitive['findings']} findings; "
             f"{sensitive['unresolved_pairs']} still need a decision.")
    if sensitive["by_kind"]:
        st.dataframe(pd.DataFrame([{"kind": kind, "what": KINDS.get(kind, ("", kind))[1], "findings": count}
                                   for kind, count in sensitive["by_kind"].items()]), hide_index=True,
                     key="findings_by_kind")
    st.subheader("Drops and demotions")
    if report.reasons:
        st.dataframe(pd.DataFrame([{"reason": reason, "pairs": count} for reason, count in report.reasons.items()]),
                     hide_index=True, key="reasons")
    else:
        st.caption("Nothing dropped or demoted.")
    if report.bad_lines:
        with st.expander(f"{len(report.bad_lines)} unreadable lines"):
            for bad in report.bad_lines[:200]:
                st.text(bad["error"])
    download_left, download_right = st.columns(2)
    download_left.download_button("Download report (text)", report.render_text(), "validation_report.txt",
                                  key="download_text")
    download_right.download_button("Download report (JSON)", json.dumps(report.to_dict(), indent=2),
                                   "validation_report.json", key="download_json")


def show_review() -> None:
    items = queue_items(workspace, [str(analysis.path)], min_confidence, collected=False)
    flagged = sum(item.reason == "flagged" for item in items)
    waiting = sum(item.status is None or item.status.decision is None for item in items)
    st.write(f"{len(items)} pairs queued ({flagged} flagged for sensitive data, {len(items) - flagged} sampled); "
             f"{waiting} awaiting a decision. The Review page holds the queue of every source.")
    if not items:
        st.info("Nothing to review: validation queued no pair.")
        return
    review_panel(workspace, items, "validation_review", sources=False)


def show_export() -> None:
    st.write("Write usable pairs as mlx-lm `prompt`/`completion` lines (train/valid/test.jsonl). Pairs with "
             "sensitive data go in only after a reviewer kept or redacted them.")
    name_column, tier_column = st.columns(2)
    name = name_column.text_input("Dataset name", value="default", key="export_name",
                                  help="Written to <workspace>/datasets/<name>/")
    min_tier = tier_column.selectbox("Lowest tier kept", TIERS, index=TIERS.index("bronze"), key="export_tier")
    if action_button("Export MLX folder", type="primary", key="export"):
        try:
            result = export_dataset(input_path, workspace, name=name, min_tier=min_tier,
                                    min_confidence=min_confidence)
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
            return
        counts = result.counts
        st.success(f"Exported to {code_span(result.folder)}: train {counts['train']}, valid {counts['valid']}, "
                   f"test {counts['test']} ({result.redacted_pairs} redacted).")
        if result.excluded:
            st.dataframe(pd.DataFrame([{"left out because": reason, "pairs": count}
                                       for reason, count in result.excluded.items()]),
                         hide_index=True, key="excluded")
        st.markdown("**First lines of train.jsonl**")
        for line in result.preview:
            st.code(json.dumps(line, ensure_ascii=False)[:2000], language="json")


if report_tab.open:
    with report_tab:
        show_report()
if review_tab.open:
    with review_tab:
        show_review()
if export_tab.open:
    with export_tab:
        show_export()
