"""Validation: the report on a training_data.jsonl, the review queue with the evidence beside each pair (secrets
highlighted but masked), and export of the cleaned dataset as an mlx-lm folder."""

from __future__ import annotations

import html
import json

import altair as alt
import pandas as pd
import streamlit as st

from engine.dataset.export import export_dataset
from engine.dataset.quality import TIERS
from engine.dataset.redact import masked_segments
from engine.dataset.review import DECISIONS, default_reviewer, record_decision
from engine.dataset.sensitive import KINDS
from engine.dataset.validate import review_items, save_uploaded_dataset, training_data_exists, validate_dataset
from engine.errors import StudioError
from engine.settings import active_config_path, active_workspace
from engine.store import Workspace

st.title("Validation")

config_path = active_config_path()
default_input, min_confidence_default = "", 0.6
try:
    from engine.config import PipelineConfig

    config = PipelineConfig.load(config_path)
    default_input, min_confidence_default = str(config.output_file), config.min_confidence
except StudioError:
    config = None
try:
    workspace = Workspace.open(active_workspace(config_path))
except StudioError as exc:
    st.error(str(exc))
    st.stop()
st.caption(f"Workspace: `{workspace.root}`")

with st.sidebar:
    reviewer = st.text_input("Reviewer", value=st.session_state.get("reviewer") or default_reviewer(), key="reviewer",
                             help="Your name, recorded with every decision.")

left, right = st.columns([3, 1])
input_path = left.text_input("Training data (JSONL)", value=default_input, key="input_path",
                             help="Defaults to paths.output_file of the active config (what linking writes).")
min_confidence = float(min_confidence_default)
right.metric("min_confidence", f"{min_confidence:g}",
             help="The linking threshold saved in the config (set it on the Linking page): a confidence is the "
                  "probability that a link is right, and pairs linked below it are demoted to a lower tier.")
upload = st.file_uploader("…or upload a JSONL", type=["jsonl"], key="upload")
if upload is not None:
    try:
        input_path = str(save_uploaded_dataset(workspace, upload.name, upload.getvalue()))
        st.caption(f"Uploaded to `{input_path}`")
    except StudioError as exc:
        st.error(str(exc))
        st.stop()

if not input_path or not training_data_exists(input_path):
    st.info(f"No training data at `{input_path or '(none)'}` yet. Run linking on the Linking page (it writes "
            "paths.output_file), type the path of a training_data.jsonl above, or upload one.")
    st.stop()

run_key = ("validated", input_path)
try:
    report, analysis = validate_dataset(input_path, workspace, min_confidence=min_confidence,
                                        record_run=run_key not in st.session_state)
except StudioError as exc:
    st.error(str(exc))
    st.stop()
st.session_state[run_key] = True

report_tab, review_tab, export_tab = st.tabs(["Report", "Review queue", "Export"])

# ---------------------------------------------------------------------------------------------------- report
with report_tab:
    columns = st.columns(5)
    columns[0].metric("Lines", f"{report.total_lines:,}")
    columns[1].metric("Valid pairs", f"{report.valid_pairs:,}")
    columns[2].metric("Usable pairs", f"{report.usable_pairs:,}")
    columns[3].metric("Tokens", f"{report.total_tokens:,}", help=report.tokenizer)
    columns[4].metric("Unresolved sensitive", f"{report.unresolved_pairs:,}")
    for line in report.recommendations:
        (st.warning if line.startswith("⚠") else st.success)(line.lstrip("⚠✓ "))

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


# ---------------------------------------------------------------------------------------------------- review
def highlighted(text: str, findings: list) -> str:
    """HTML for a field with each finding masked and marked with its kind."""
    parts = []
    for piece, kind in masked_segments(text, findings):
        if kind is None:
            parts.append(html.escape(piece))
        else:
            parts.append(f'<mark title="{html.escape(kind)}" style="background:#ffd54f;padding:0 2px">'
                         f'{html.escape(piece)} <small>[{html.escape(kind)}]</small></mark>')
    return ('<div style="white-space:pre-wrap;font-family:monospace;font-size:0.85em;border:1px solid #ddd;'
            f'padding:0.5em;border-radius:4px;max-height:24em;overflow:auto">{"".join(parts)}</div>')


with review_tab:
    items = review_items(input_path, workspace, analysis=analysis)
    pending = [item for item in items if item.decision is None or item.decision.decision == "skip"]
    st.write(f"{len(items)} pairs queued ({sum(item.reason == 'flagged' for item in items)} flagged for sensitive "
             f"data, {sum(item.reason == 'sampled' for item in items)} sampled); {len(pending)} awaiting a decision.")
    if not items:
        st.info("Nothing to review: validation queued no pair.")
    else:
        def label(index: int) -> str:
            item = items[index]
            state = f"{item.decision.decision} by {item.decision.reviewer}" if item.decision else "pending"
            kinds = ", ".join(sorted({finding.kind for finding in item.findings}))
            return f"line {item.pair_index + 1} · {item.reason}{' · ' + kinds if kinds else ''} · {state}"

        first_pending = next((i for i, item in enumerate(items) if item in pending), 0)
        chosen = st.selectbox("Pair", range(len(items)), index=first_pending, format_func=label, key="review_pick")
        item = items[chosen]
        pair_column, evidence_column = st.columns([3, 2])
        with pair_column:
            for field in ("instruction", "input", "output"):
                text = item.record.get(field)
                if isinstance(text, str):
                    st.markdown(f"**{field}**")
                    st.markdown(highlighted(text, [f for f in item.findings if f.field == field]),
                                unsafe_allow_html=True)
        with evidence_column:
            metadata = item.record.get("metadata") if isinstance(item.record.get("metadata"), dict) else {}
            st.markdown(f"**Tier:** {item.tier}" + (f" — {', '.join(item.quality_reasons)}"
                                                    if item.quality_reasons else ""))
            st.markdown(f"**Commit:** `{str(metadata.get('commit_sha', '?'))[:12]}` · "
                        f"`{metadata.get('file_path', '?')}` · confidence {metadata.get('confidence', '?')}")
            sources = metadata.get("sources") if isinstance(metadata.get("sources"), list) else []
            if sources:
                st.markdown("**Evidence**")
                st.dataframe(pd.DataFrame([{key: source.get(key) for key in (
                    "source_id", "knowledge_type", "confidence", "timestamp", "app_name", "window_name")}
                    for source in sources if isinstance(source, dict)]), hide_index=True, key="evidence")
            if item.findings:
                st.markdown("**Findings** (values never shown)")
                st.dataframe(pd.DataFrame([{"field": f.field, "kind": f.kind, "start": f.start, "end": f.end,
                                            "detector": f.source} for f in item.findings]),
                             hide_index=True, key="pair_findings")
            if item.decision:
                st.caption(f"Latest: {item.decision.decision} by {item.decision.reviewer} at "
                           f"{item.decision.decided_at[:19].replace('T', ' ')}")
        def decide(decision: str) -> None:
            """Runs before the rerun: record, then move the picker on to the next pending pair."""
            try:
                record_decision(workspace, item.pair_hash, decision, reviewer, dataset=str(analysis.path),
                                pair_index=item.pair_index)
            except StudioError as exc:
                st.session_state["decision_error"] = str(exc)
                return
            st.session_state["last_decision"] = f"line {item.pair_index + 1}: {decision} by {reviewer}"
            following = next((i for i in range(chosen + 1, len(items)) if items[i] in pending), None)
            if following is not None:
                st.session_state["review_pick"] = following

        buttons = st.columns(len(DECISIONS))
        labels = {"good": "Good (keep)", "bad": "Bad (drop)", "skip": "Skip", "redact": "Redact"}
        for column, decision in zip(buttons, DECISIONS, strict=True):
            column.button(labels[decision], key=f"decide_{decision}", width="stretch", on_click=decide,
                          args=(decision,), disabled=not reviewer.strip())
        if st.session_state.get("decision_error"):
            st.error(st.session_state.pop("decision_error"))
        if not reviewer.strip():
            st.caption("Enter your name in the sidebar to record decisions.")
        if st.session_state.get("last_decision"):
            st.caption(f"Recorded {st.session_state['last_decision']}.")

# ---------------------------------------------------------------------------------------------------- export
with export_tab:
    st.write("Write usable pairs as mlx-lm `prompt`/`completion` lines (train/valid/test.jsonl). Pairs with "
             "sensitive data go in only after a reviewer kept or redacted them.")
    name_column, tier_column = st.columns(2)
    name = name_column.text_input("Dataset name", value="default", key="export_name",
                                  help="Written to <workspace>/datasets/<name>/")
    min_tier = tier_column.selectbox("Lowest tier kept", TIERS, index=TIERS.index("bronze"), key="export_tier")
    if st.button("Export MLX folder", type="primary", key="export"):
        try:
            result = export_dataset(input_path, workspace, name=name, min_tier=min_tier,
                                    min_confidence=min_confidence)
        except StudioError as exc:
            st.error(str(exc))
        else:
            counts = result.counts
            st.success(f"Exported to {result.folder}: train {counts['train']}, valid {counts['valid']}, "
                       f"test {counts['test']} ({result.redacted_pairs} redacted).")
            if result.excluded:
                st.dataframe(pd.DataFrame([{"left out because": reason, "pairs": count}
                                           for reason, count in result.excluded.items()]),
                             hide_index=True, key="excluded")
            st.markdown("**First lines of train.jsonl**")
            for line in result.preview:
                st.code(json.dumps(line, ensure_ascii=False)[:2000], language="json")
