"""Sources: edit the pipeline config, check each source, and extract everything into the workspace."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.errors import StudioError
from engine.extract import extract, last_extract
from views.access import action_button, action_submit
from views.ui import checked_sources, code_span, escape_markdown, progress_bar, require_config

st.title("Sources")

config_path, workspace, config = require_config()


def lines(values: list[str]) -> str:
    return "\n".join(values)


def parse_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


with st.expander("Edit config", icon=":material/edit:"):
    with st.form("config"):
        st.markdown("**Paths** (relative paths are taken from the config file's folder)")
        screenpipe_db = st.text_input("Screenpipe database", config.get("paths.screenpipe_db"))
        repos = config.get("paths.git_repo")
        git_repos = st.text_area("Git repositories (one per line)", lines([repos] if isinstance(repos, str) else repos))
        output_file = st.text_input("Training data output file", config.get("paths.output_file"))
        st.markdown("**Documents**")
        doc_dirs = st.text_area("Document folders (one per line)", lines(config.get("document_sources.directories")))
        doc_exts = st.text_input("Document extensions", " ".join(config.get("document_sources.extensions")))
        code_exts = st.text_input("Code extensions", " ".join(config.get("code_extensions")))
        st.markdown("**Filters**")
        left, middle, right = st.columns(3)
        min_length = left.number_input("min_knowledge_length", 0, 100_000, config.min_knowledge_length,
                                       key="min_length",
                                       help="Screen, audio and doc texts shorter than this are skipped.")
        min_code_lines = middle.number_input("min_code_lines", 0, 100_000, config.min_code_lines,
                                             help="Changed files with fewer added lines are skipped.")
        max_commits = right.number_input("max_commits", 1, 1_000_000, config.max_commits,
                                         help="Newest non-merge commits read per repository.")
        left, right = st.columns(2)
        apps_include = left.text_input("Apps to include (comma separated, * globs; empty = all)",
                                       ", ".join(config.get("screenpipe.apps_include")), key="apps_include")
        apps_exclude = right.text_input("Apps to exclude", ", ".join(config.get("screenpipe.apps_exclude")),
                                        key="apps_exclude")
        windows_include = left.text_input("Windows to include", ", ".join(config.get("screenpipe.windows_include")),
                                          key="windows_include")
        windows_exclude = right.text_input("Windows to exclude", ", ".join(config.get("screenpipe.windows_exclude")),
                                           key="windows_exclude")
        since = left.text_input("Since (e.g. 2026-03-01)", config.get("screenpipe.since") or "", key="since")
        until = right.text_input("Until", config.get("screenpipe.until") or "", key="until")
        if action_submit("Save config", icon=":material/save:", key="save"):
            split = lambda text: [item.strip() for item in text.split(",") if item.strip()]  # noqa: E731
            repo_list = parse_lines(git_repos)
            try:
                updated = config.with_values({
                    "paths.screenpipe_db": screenpipe_db.strip(),
                    "paths.git_repo": repo_list[0] if len(repo_list) == 1 else repo_list,
                    "paths.output_file": output_file.strip(),
                    "document_sources.directories": parse_lines(doc_dirs),
                    "document_sources.extensions": doc_exts.split(),
                    "code_extensions": code_exts.split(),
                    "filtering.min_knowledge_length": int(min_length),
                    "filtering.min_code_lines": int(min_code_lines),
                    "filtering.max_commits": int(max_commits),
                    "screenpipe.apps_include": split(apps_include), "screenpipe.apps_exclude": split(apps_exclude),
                    "screenpipe.windows_include": split(windows_include),
                    "screenpipe.windows_exclude": split(windows_exclude),
                    "screenpipe.since": since.strip() or None, "screenpipe.until": until.strip() or None,
                })
                updated.save()
                st.success(f"Saved {code_span(updated.path)}.")
                config = updated
            except StudioError as exc:
                st.error(escape_markdown(str(exc)))

st.subheader("Configured sources")
for status in checked_sources(config):
    with st.container(border=True):
        icon = ":material/check_circle:" if status.ok else ":material/error:"
        st.markdown(f"{icon} **{escape_markdown(status.kind)}** · {code_span(status.location)}")
        if status.ok:
            st.caption(escape_markdown(status.message))
            shown = {key: value for key, value in status.details.items() if value not in (None, "")}
            counts = {key: value for key, value in shown.items() if isinstance(value, int)}
            columns = st.columns(max(4, len(counts)))
            for column, (key, value) in zip(columns, counts.items(), strict=False):
                column.metric(key, f"{value:,}")
            st.markdown("  \n".join(f"**{escape_markdown(key)}**: {escape_markdown(value)}"
                                    for key, value in shown.items() if key not in counts))
        else:
            st.error(escape_markdown(status.message))

st.subheader("Extract")
if action_button("Extract into workspace", type="primary", icon=":material/download:", key="extract"):
    bar, show_progress = progress_bar()

    try:
        result = extract(config, workspace, progress=show_progress)
        bar.progress(1.0, text=f"Done in {result.seconds:.1f} s")
    except StudioError as exc:
        bar.empty()
        st.error(escape_markdown(str(exc)))

report = last_extract(workspace)
if report is None:
    st.info("Nothing extracted into this workspace yet: press **Extract into workspace**.")
    st.stop()
if report["status"] == "failed":
    st.error(escape_markdown(f"The last extract ({report['started_at']}) failed: "
                             f"{report.get('error', 'unknown error')}"))
    st.stop()
st.caption(
    escape_markdown(f"Last extract {report['started_at']} · {report['seconds']} s · screenpipe schema "
                    f"{report['screenpipe_era']}"))
knowledge = report["knowledge"]
cols = st.columns(4)
cols[0].metric("Knowledge items", f"{sum(k['items'] for k in knowledge.values()):,}")
cols[1].metric("Source rows behind them", f"{sum(k['sources'] for k in knowledge.values()):,}")
cols[2].metric("Commits", f"{report['commits']:,}")
cols[3].metric("Code file changes", f"{report['file_changes']:,}")
st.dataframe(
    pd.DataFrame([
        {"source": s["source"], "read": s["rows_read"], "kept": s["kept"], "new": s["new_items"],
         "duplicates": s["duplicates"], "skipped": s["skipped_total"], "seconds": round(s["seconds"], 2)}
        for s in report["sources"]
    ]),
    hide_index=True, width="stretch",
)
skipped = [
    {"source": s["source"], "reason": reason, "count": count, "examples": ", ".join(s["skipped_examples"][reason])}
    for s in report["sources"] for reason, count in s["skipped"].items()
]
st.markdown("**Skipped, and why**")
if skipped:
    st.dataframe(pd.DataFrame(skipped), hide_index=True, width="stretch")
else:
    st.caption("Nothing was skipped in the last run.")
for note in report.get("notes", []):
    st.caption(escape_markdown(f"note: {note}"))
