"""Small widgets the pages share (a view module, not a page: app.py does not route it)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from engine.config import PipelineConfig
from engine.errors import StudioError
from engine.extract import SourceStatus, inspect_sources
from engine.processes import TaskStatus, task_status
from engine.progress import ProgressFn
from engine.settings import active_config_path, active_workspace

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


_WORD_JOINER = "\u2060"  # zero width, no break: splits what GFM would turn into a link without changing the look
_AUTOLINKS = (re.compile(r"@"), re.compile(r"(?i)(?<![a-z0-9])www(?=\.)"), re.compile(r"(?i)[a-z][a-z0-9+.-]*(?=://)"))


def escape_markdown(text: str) -> str:
    """Data shown inside st.markdown / st.caption / st.error ... exactly as it is: no emphasis, links, images,
    headings, HTML, icons or math from a commit message or a screen's text. Backslash escapes stop Markdown; GFM
    also turns bare e-mail addresses, www. names and scheme:// URLs into links after unescaping, so those get an
    invisible word joiner (after the @, after www, before ://) that breaks the pattern and not the look."""
    text = str(text)
    text = _AUTOLINKS[0].sub("@" + _WORD_JOINER, text)
    text = _AUTOLINKS[1].sub(lambda match: match.group(0) + _WORD_JOINER, text)
    text = _AUTOLINKS[2].sub(lambda match: match.group(0) + _WORD_JOINER, text)
    return _MARKDOWN.sub(r"\\\1", text)


def code_span(text: object) -> str:
    """Data as inline code inside st.markdown / st.caption: a fence of backticks longer than any run inside it
    (CommonMark code spans take their content literally, so nothing in it is Markdown, HTML or a shortcode)."""
    value = str(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {value} " if value.startswith("`") or value.endswith("`") or not value.strip() else value
    return f"{fence}{padded}{fence}"


def progress_bar(text: str = "Starting ...") -> tuple[st.delta_generator.DeltaGenerator, ProgressFn]:
    """An st.progress bar and the engine ProgressFn that drives it (stage, done of total)."""
    bar = st.progress(0.0, text=text)

    def show(stage: str, done: int, total: int | None) -> None:
        if total:
            bar.progress(min(1.0, done / total), text=f"{stage}: {done:,} of {total:,}")
        else:
            bar.progress(0.0, text=f"{stage}: {done:,}")

    return bar, show


@st.cache_resource(show_spinner=False)
def shared_model_cache():
    """Loaded chat models shared by every session of this server (engine.chat.models.ModelCache): switching back
    to a model is instant, and models warmed in the background are there when a page asks."""
    from engine.chat.models import ModelCache

    return ModelCache(max_models=4, mlx_thread=True)


@st.cache_resource(show_spinner=False)
def background_loader():
    """Threads that load models while a page draws their progress (at most two loads at once)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="load-model")


def task_progress(status: TaskStatus, what: str) -> None:
    """A running task as a progress bar: what, its phase, done of total, elapsed time and the estimate left."""
    fraction = min(1.0, status.done / status.total) if status.total else 0.0
    st.progress(fraction, text=escape_markdown(f"{what}: {status.describe()}"))


def background_task(workspace: Path, kind: str, what: str, show_result: Callable[[dict], None]) -> TaskStatus | None:
    """The latest background task of `kind`: its progress while it runs (polled every second), then its result
    (`show_result(result)`) or its error. When it finishes while the page watches, the whole page is drawn again
    so everything that depends on it is current."""
    status = task_status(workspace, kind)

    @st.fragment(run_every=1.0 if status is not None and status.running else None)
    def panel() -> None:
        current = task_status(workspace, kind)
        if current is None:
            return
        if current.running:
            task_progress(current, what)
            return
        if status is not None and status.running:
            st.rerun(scope="app")  # it finished while this page watched it
        if current.state == "failed":
            st.error(escape_markdown(f"{what} failed: {current.error}"))
        elif current.result:
            show_result(current.result)

    panel()
    return status


def require_config() -> tuple[Path, Path, PipelineConfig]:
    """The active config path, its workspace and the loaded config; if it cannot be loaded, say why and how to
    fix it, and stop the page."""
    config_path = active_config_path()
    workspace = active_workspace(config_path)
    st.caption(f"Config: {code_span(config_path)} · workspace: {code_span(workspace)}")
    try:
        return config_path, workspace, PipelineConfig.load(config_path)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
        st.info("Run `python -m engine demo` (or `make run`) to build the demo config, or set STUDIO_CONFIG to yours.")
        st.stop()  # raises: the page ends here


@st.cache_data(ttl=60, show_spinner="Checking the sources ...")
def _checked_sources(raw_config: str, base_dir: str) -> list[SourceStatus]:
    return inspect_sources(PipelineConfig(raw=json.loads(raw_config), base_dir=Path(base_dir)))


def checked_sources(config: PipelineConfig) -> list[SourceStatus]:
    """inspect_sources for the pages: the checks count and group every frame (seconds on a big database), so
    reruns reuse them for a minute; a changed config is a new cache key. New screenpipe rows show up in the counts
    up to a minute late."""
    return _checked_sources(json.dumps(config.raw, sort_keys=True), str(config.base_dir))
