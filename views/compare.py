"""Compare: one prompt, the base model and a fine-tuned adapter (or any two versions) answering side by side, and
a probe that scores both on training and held-out pairs against the real code."""

from __future__ import annotations

import threading
import time

import pandas as pd
import streamlit as st

from engine.chat.generate import GenerationSettings, interleave_on_mlx_thread, stream_answer
from engine.chat.layout import example_prompts
from engine.chat.models import (
    ModelCache,
    ModelChoice,
    adapter_choice,
    base_choice,
    openblas_note,
    record_served,
    served_choice,
    version_choice,
    workspace_choices,
)
from engine.chat.probe import ProbeReport
from engine.errors import StudioError
from engine.processes import TaskBusy, start_task, task_status
from engine.settings import active_workspace
from engine.store import Workspace
from views.access import action_button
from views.ui import background_loader, background_task, code_span, escape_markdown, shared_model_cache

DEPLOYED = "Deployed version (canary-routed)"
SIDES = ("left", "right")
DRAW_EVERY_SECONDS = 0.15  # redraw a streaming column at most this often: the browser shares the CPU


def pick_choice(side: str, options: dict[str, ModelChoice | None], default: str) -> ModelChoice | None:
    """A model selector and adapter toggle for one column; None stands for the canary-routed deployed version."""
    names = list(options)
    chosen = st.selectbox(f"{side.title()} model", names, index=names.index(default), key=f"model_{side}")
    choice = options[chosen]
    if choice is not None and choice.adapter_dir is not None:
        if not st.toggle("Adapter on", value=True, key=f"adapter_{side}",
                         help="Off: the same base model without this adapter."):
            return choice.base()
    return choice


def column_defaults(options: dict[str, ModelChoice | None]) -> tuple[str, str]:
    """Right: the deployed version, else the newest adapter; left: that adapter's base model."""
    names = list(options)
    adapters = [name for name, choice in options.items() if choice is not None and choice.adapter_dir is not None]
    right = DEPLOYED if DEPLOYED in options else (adapters[0] if adapters else names[0])
    right_choice = options[right] or (options[adapters[0]] if adapters else None)
    left = next((name for name, choice in options.items()
                 if choice is not None and choice.adapter_dir is None and right_choice is not None
                 and choice.model == right_choice.model), names[0])
    return left, right


def render_answer(slot, text: str, streaming: bool) -> None:
    slot.code(text + (" ▌" if streaming else ""), language=None, wrap_lines=True)


def load_with_progress(cache: ModelCache, choices: dict[str, ModelChoice], status) -> tuple[dict, dict]:
    """The loaded models for each side, with a progress line while one loads (in the background, so the line can
    show the elapsed time and what the last load of that model suggests is left)."""
    models, load_seconds = {}, {}
    for side, choice in choices.items():
        if cache.cached(choice):
            models[side], load_seconds[side] = cache.get(choice), 0.0
            continue
        future = background_loader().submit(cache.get, choice)
        started = cache.loading_since(choice) or time.time()
        while not future.done():
            elapsed = time.time() - (cache.loading_since(choice) or started)
            estimate = cache.load_estimate(choice)
            left = f" · about {max(0.0, estimate - elapsed):.0f} s left" if estimate else ""
            fraction = min(0.99, elapsed / estimate) if estimate else 0.0
            status.progress(fraction, text=escape_markdown(
                f"Loading {choice.name} (once; later sends reuse it): {elapsed:.0f} s{left}"))
            time.sleep(0.2)
        models[side] = future.result()  # raises the load's own error
        load_seconds[side] = models[side].load_seconds
    return models, load_seconds


def generation_line(streams: dict, prompt_tokens: dict[str, int], started: float, max_tokens: int) -> tuple[float,
                                                                                                             str]:
    """Progress of both answers: the phase, tokens so far of at most max_tokens, elapsed and the most time left
    (both answers come from one CPU in turn, so what is left goes at their combined rate)."""
    elapsed = time.perf_counter() - started
    counts = {side: stream.stats.tokens for side, stream in streams.items()}
    if not any(counts.values()):
        tokens = " and ".join(f"{count:,}" for count in prompt_tokens.values())
        return 0.0, f"Reading the prompts ({tokens} tokens): {elapsed:.0f} s"
    remaining = sum(max_tokens - counts[side] for side, stream in streams.items() if not stream.done)
    rate = sum(counts.values()) / elapsed if elapsed else 0.0
    most = f" · at most {remaining / rate:.0f} s left" if rate and remaining else ""
    fraction = min(1.0, sum(counts.values()) / (max_tokens * len(streams)))
    return fraction, (f"Generating: {counts['left']:,} and {counts['right']:,} of at most {max_tokens:,} tokens · "
                      f"{elapsed:.0f} s{most}")


def run_compare(ws: Workspace, picks: dict[str, ModelChoice | None], prompt: str,
                settings: GenerationSettings) -> dict:
    """Load both models (cached), stream both answers into their columns at once, and return what was shown."""
    served = {}
    choices = {}
    for side, choice in picks.items():
        if choice is None:
            choice, served[side] = served_choice(ws)
        choices[side] = choice
    status = st.empty()
    models, load_seconds = load_with_progress(shared_model_cache(), choices, status)
    columns = dict(zip(SIDES, st.columns(2), strict=True))
    slots = {}
    for side in SIDES:
        with columns[side]:
            st.markdown(f"**{escape_markdown(choices[side].name)}**")
            slots[side] = st.empty()
            render_answer(slots[side], "", True)
    streams = {side: stream_answer(models[side], prompt, settings) for side in SIDES}
    prompt_tokens = {side: len(models[side].tokenizer.encode(streams[side].prompt_text)) for side in SIDES}
    order = list(SIDES)
    last_draw = dict.fromkeys([*SIDES, "status"], 0.0)
    started = time.perf_counter()
    status.progress(0.0, text=generation_line(streams, prompt_tokens, started, settings.max_tokens)[1])
    cancel = threading.Event()  # the person left the page or pressed Send again: stop generating for them
    try:
        for index, _piece in interleave_on_mlx_thread([streams[side] for side in order], cancel):
            side = order[index]
            now = time.perf_counter()
            if now - last_draw[side] > DRAW_EVERY_SECONDS:
                render_answer(slots[side], streams[side].text, True)
                last_draw[side] = now
            if now - last_draw["status"] > DRAW_EVERY_SECONDS:
                fraction, line = generation_line(streams, prompt_tokens, started, settings.max_tokens)
                status.progress(fraction, text=line)
                last_draw["status"] = now
    except Exception:  # a failed answer counts against a canary before the error is shown
        for request in served.values():
            record_served(ws, request, ok=False, latency_ms=None)
        raise
    finally:
        cancel.set()
    status.empty()
    result = {}
    for side in SIDES:
        render_answer(slots[side], streams[side].text, False)
        stats = streams[side].stats
        if side in served:
            record_served(ws, served[side], ok=stats.tokens > 0, latency_ms=stats.total_seconds * 1000)
        result[side] = {"name": choices[side].name, "text": streams[side].text, "stats": stats.summary(),
                        "load": load_seconds[side], "layout": models[side].layout.describe()}
        with columns[side]:
            show_stats(result[side])
    return result


def show_stats(answer: dict) -> None:
    loaded = f" · loaded in {answer['load']:.1f} s" if answer["load"] else ""
    st.caption(escape_markdown(answer["stats"] + loaded), help=escape_markdown(f"Prompt layout: {answer['layout']}"))


def show_results(result: dict) -> None:
    """The last answers again (after a rerun), with copy buttons (st.code) and tokens/s and latency under each."""
    columns = dict(zip(SIDES, st.columns(2), strict=True))
    for side in SIDES:
        with columns[side]:
            st.markdown(f"**{escape_markdown(result[side]['name'])}**")
            render_answer(st.empty(), result[side]["text"], False)
            show_stats(result[side])


def chat_tab(ws: Workspace, picks: dict[str, ModelChoice | None], examples: list, settings: GenerationSettings) -> None:
    if examples:
        titles = ["(type your own)"] + [example.title for example in examples]

        def use_example() -> None:
            chosen = st.session_state["example"]
            if chosen != titles[0]:
                st.session_state["prompt"] = examples[titles.index(chosen) - 1].prompt

        chosen = st.selectbox("Example prompt from the training and held-out data", titles, key="example",
                              on_change=use_example)
        if chosen != titles[0]:
            with st.expander("The real answer from the data"):
                st.code(examples[titles.index(chosen) - 1].reference, language=None, wrap_lines=True)
    prompt = st.text_area("Prompt", key="prompt", height=160,
                          placeholder="Instruction: ...\nInput: ...\n\nTask: Modify src/app.py\nOutput:")
    if st.button("Send to both", type="primary", icon=":material/send:", key="send"):
        try:
            st.session_state["compare_result"] = run_compare(ws, picks, prompt, settings)
        except StudioError as exc:
            st.error(escape_markdown(str(exc)))
    elif "compare_result" in st.session_state:
        show_results(st.session_state["compare_result"])


def probe_tab(ws: Workspace, picks: dict[str, ModelChoice | None], settings: GenerationSettings) -> None:
    try:  # the probe measures the current version itself, so no canary routing here
        left, right = (picks[side] or version_choice(ws, "current") for side in SIDES)
    except StudioError:
        left, right = None, None
    tuned = right if right is not None and right.adapter_dir is not None else None
    if tuned is None or left is None:
        st.info("Probing needs an adapter (adapter on) in the right column: pick one above, or train one on the "
                "Training page and deploy it.")
        return
    if tuned.data_dir is None:
        st.info(escape_markdown(f"The training data of {tuned.name} is unknown, so there are no held-out pairs to "
                                "probe."))
        return
    st.caption(f"Pairs from {code_span(tuned.data_dir)}: training pairs (should work well) and held-out pairs (show "
               f"overfitting), {escape_markdown(tuned.name)} beside its base model, each answer scored against the "
               f"real code (chrF and line overlap, 0-100). It runs in the background: you can leave the page.")
    count = st.slider("Pairs from each split", 1, 10, 3, key="probe_n")
    probing = task_status(ws.root, "probe")
    if action_button("Run probe", icon=":material/science:", key="run_probe",
                     disabled=bool(probing and probing.running)):
        try:
            start_task(ws.root, "probe", [
                "probe", "--adapter", str(tuned.adapter_dir), "--model", tuned.model, "--data", str(tuned.data_dir),
                "--n", str(count), "--max-tokens", str(settings.max_tokens), "--label", tuned.name,
                *(["--base-label", left.name] if left.adapter_dir is None and left.model == tuned.model else []),
                "--json", "--workspace", str(ws.root.resolve())])
            st.rerun()
        except (TaskBusy, StudioError) as exc:
            st.error(escape_markdown(str(exc)))
    background_task(ws.root, "probe", "Probing", lambda result: show_probe(ProbeReport.from_dict(result)))


def show_probe(report: ProbeReport) -> None:
    first, second = report.labels[0], report.labels[-1]
    if "closer to" in report.verdict():
        st.success(escape_markdown(report.verdict()))
    else:
        st.warning(escape_markdown(report.verdict()))
    table = pd.DataFrame([{
        "split": row.split, "pair": row.index + 1,
        "prompt": next((line for line in row.prompt.splitlines() if line.strip()), "")[:80],
        f"chrF {first}": round(row.chrf[first], 1), f"chrF {second}": round(row.chrf[second], 1),
        f"lines {first}": round(row.line_overlap[first], 1), f"lines {second}": round(row.line_overlap[second], 1),
    } for row in report.rows])
    st.dataframe(table, hide_index=True, width="stretch")
    for row in report.rows:
        with st.expander(escape_markdown(f"{row.split} #{row.index + 1}: answers")):
            columns = st.columns(3)
            for column, (title, text) in zip(columns, [("real code", row.reference), (first, row.answers[first]),
                                                       (second, row.answers[second])], strict=True):
                column.markdown(f"**{escape_markdown(title)}**")
                column.code(text, language=None, wrap_lines=True)


def main() -> None:
    st.title("Compare")
    ws = Workspace.open(active_workspace())
    try:
        choices = workspace_choices(ws)
    except StudioError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()
    options: dict[str, ModelChoice | None] = {}
    if any(choice.version is not None for choice in choices):
        options[DEPLOYED] = None
    options.update({choice.name: choice for choice in choices})

    with st.expander("Any adapter folder", icon=":material/folder_open:"):
        folder = st.text_input("Adapter folder (holding adapters.safetensors and adapter_config.json)",
                               key="adapter_folder")
        if folder.strip():
            try:
                custom = adapter_choice(folder.strip(), label=f"folder {folder.strip()}")
                options[custom.name] = custom
            except StudioError as exc:
                st.error(escape_markdown(str(exc)))
    if not any(choice is None or choice.adapter_dir is not None for choice in options.values()):
        st.info("No fine-tuned adapter in this workspace yet: train one on the Training page "
                "(or `python -m engine train --data DIR`), or give an adapter folder above. Until then both "
                "columns can only use base models.")

    left_default, right_default = column_defaults(options)
    columns = dict(zip(SIDES, st.columns(2), strict=True))
    picks = {}
    for side, default in zip(SIDES, (left_default, right_default), strict=True):
        with columns[side]:
            picks[side] = pick_choice(side, options, default)

    with st.sidebar:
        st.subheader("Generation")
        temperature = st.slider("Temperature", 0.0, 1.5, 0.0, 0.05, key="temperature",
                                help="0 always picks the likeliest token (both columns comparable); higher varies.")
        top_p = st.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key="top_p",
                          help="Sample only from the likeliest tokens that make up this share of probability.")
        max_tokens = st.slider("Max tokens", 16, 1000, 128, 16, key="max_tokens")
        system_prompt = st.text_area("System prompt", key="system_prompt",
                                     help="Sent as a system message through the chat template.")
    settings = GenerationSettings(temperature, top_p, max_tokens, system_prompt or None)
    # Load what the columns show now, in the background: by the time a prompt is typed they are ready.
    warm = [pick for pick in picks.values() if pick is not None]
    if any(pick is None for pick in picks.values()):
        try:
            warm.append(version_choice(ws, "current"))
        except StudioError:
            warm.append(base_choice())  # nothing deployed: the base model answers
    shared_model_cache().warm(warm)
    note = openblas_note()
    if note:
        st.caption(escape_markdown(note))

    data_dir = next((choice.data_dir for choice in (picks["right"], picks["left"], options[right_default])
                     if choice is not None and choice.data_dir is not None), None)
    chat, probing = st.tabs(["Chat", "Probe"])
    with chat:
        chat_tab(ws, picks, example_prompts(data_dir), settings)
    with probing:
        probe_tab(ws, picks, settings)


main()
