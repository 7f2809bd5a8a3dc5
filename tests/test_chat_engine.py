"""engine.chat with real mlx-lm: a tiny model with and without an adapter trained on a distinctive dataset, the
prompt layouts, streaming settings, the model cache, versions, probe scores and the generate / probe verbs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.chat.generate import GenerationSettings, generate_answer, interleave, stream_answer
from engine.chat.layout import PromptLayout, detect_layout, example_prompts, render_prompt, seed_prompt
from engine.chat.models import (
    ChatError,
    ModelCache,
    adapter_choice,
    base_choice,
    canonical_model,
    record_served,
    served_choice,
    version_choice,
    workspace_choices,
)
from engine.chat.probe import chrf, line_overlap, probe
from engine.errors import StudioError
from engine.store import Workspace
from tests.chat_fixtures import ANSWER, LEARNED, seed_style_prompt, trained_chat_adapter

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_PROMPT = seed_style_prompt("window")


@pytest.fixture(scope="session")
def chat_adapter(tmp_path_factory):
    return trained_chat_adapter(tmp_path_factory)


@pytest.fixture(scope="module")
def models(chat_adapter):
    cache = ModelCache()
    tuned = adapter_choice(chat_adapter.adapter_dir)
    return cache, cache.get(tuned.base()), cache.get(tuned)


# -- the adapter changes the output the way the data says -----------------------------------------------------------
def test_adapter_answers_like_its_training_data_and_base_does_not(chat_adapter, models):
    _, base, tuned = models
    held_out = [json.loads(line)["prompt"] for line in (chat_adapter.data_dir / "test.jsonl").read_text().splitlines()]
    for prompt in held_out[:3]:
        base_answer = generate_answer(base, prompt, GenerationSettings(max_tokens=24)).text
        tuned_answer = generate_answer(tuned, prompt, GenerationSettings(max_tokens=24)).text
        assert tuned_answer.strip() == ANSWER, tuned_answer
        assert "canary deploy" not in base_answer, base_answer
    # Laid out differently from training (no chat template), the same adapter does not produce the answer:
    raw = generate_answer(tuned, held_out[0], GenerationSettings(max_tokens=24), raw=True).text
    assert raw.strip() != ANSWER


def test_layout_matches_what_mlx_lm_trained_on(chat_adapter, models):
    _, _, tuned = models
    layout = detect_layout(chat_adapter.data_dir)
    assert (layout.data_format, layout.seed_fields) == ("completions", True)
    tokenizer = tuned.tokenizer
    prompt = seed_style_prompt("index")
    rendered = render_prompt(tokenizer, layout, prompt)
    # mlx-lm's CompletionsDataset: chat template over [user: prompt, assistant: completion]; the answer follows
    trained = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": ANSWER}], return_dict=False)
    prefix = tokenizer.encode(rendered, add_special_tokens=False)
    assert trained[: len(prefix)] == prefix
    assert tokenizer.decode(trained[len(prefix):]).startswith(ANSWER)
    with_system = render_prompt(tokenizer, layout, prompt, system_prompt="You write Python.")
    assert with_system == "<|system|>\nYou write Python.<|end|>\n" + rendered
    assert render_prompt(tokenizer, PromptLayout("text"), "def f(", system_prompt=None) == "def f("


def test_layouts_of_chat_text_and_seed_pairs(tmp_path):
    chat = tmp_path / "chat"
    chat.mkdir()
    (chat / "train.jsonl").write_text(json.dumps({"messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Task: Modify a.py"},
        {"role": "assistant", "content": "x = 1"}]}) + "\n")
    (chat / "valid.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    assert (detect_layout(chat).data_format, detect_layout(chat).seed_fields) == ("chat", True)
    examples = example_prompts(chat)
    assert [(e.split, e.prompt, e.reference, e.system) for e in examples] == [
        ("train", "Task: Modify a.py", "x = 1", "You are terse."), ("valid", "hi", "hello", None)]
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    pair = {"instruction": "Add retry", "input": "Screen Context: 503s\n\nTask: Modify client.py", "output": "retry()",
            "metadata": {"file_path": "client.py"}}
    (seeds / "train.jsonl").write_text(json.dumps(pair) + "\n")
    assert detect_layout(seeds) == PromptLayout("completions", True, seeds)
    [example] = example_prompts(seeds)
    assert example.prompt == "Instruction: Add retry\nInput: Screen Context: 503s\n\nTask: Modify client.py\nOutput:"
    assert example.prompt == seed_prompt("Add retry", "Screen Context: 503s", "client.py")
    text = tmp_path / "text"
    text.mkdir()
    (text / "train.jsonl").write_text(json.dumps({"text": "line one\nline two\nline three\nline four"}) + "\n")
    [example] = example_prompts(text)
    assert (detect_layout(text).data_format, example.prompt, example.reference) == (
        "text", "line one\nline two\n", "line three\nline four")
    assert detect_layout(tmp_path / "missing") == PromptLayout()


# -- streaming and settings ------------------------------------------------------------------------------------------
def test_streaming_pieces_max_tokens_and_sampling(models):
    _, base, tuned = models
    stream = stream_answer(base, HELD_OUT_PROMPT, GenerationSettings(max_tokens=9))
    pieces = list(stream)
    assert len(pieces) >= 2 and "".join(pieces) == stream.text
    assert stream.stats.tokens == 9 and stream.stats.finish_reason == "length"
    assert stream.stats.first_token_seconds > 0 and stream.stats.tokens_per_second > 0
    greedy = generate_answer(base, HELD_OUT_PROMPT, GenerationSettings(max_tokens=12)).text
    hot = [generate_answer(base, HELD_OUT_PROMPT, GenerationSettings(1.5, 1.0, 12, seed=seed)).text
           for seed in (1, 1, 2)]
    assert hot[0] == hot[1], "the same seed must give the same sample"
    assert greedy != hot[0] and hot[0] != hot[2], "temperature samples, and another seed another sample"
    # top-p this small keeps only the likeliest token: sampling becomes greedy
    assert generate_answer(base, HELD_OUT_PROMPT, GenerationSettings(1.5, 0.01, 12, seed=5)).text == greedy
    finished = generate_answer(tuned, HELD_OUT_PROMPT, GenerationSettings(max_tokens=64))
    assert finished.stats.finish_reason == "stop" and finished.stats.tokens < 64
    with pytest.raises(StudioError, match="top-p"):
        stream_answer(base, "x", GenerationSettings(top_p=0))
    with pytest.raises(StudioError, match="prompt is empty"):
        stream_answer(base, "  ", GenerationSettings())


def test_interleaved_streams_give_the_same_answers_as_one_at_a_time(models):
    import mlx.core as mx

    _, base, tuned = models
    settings = GenerationSettings(max_tokens=16)
    alone = [generate_answer(model, HELD_OUT_PROMPT, settings).text for model in (base, tuned)]
    before = mx.default_stream(mx.default_device())
    streams = [stream_answer(model, HELD_OUT_PROMPT, settings) for model in (base, tuned)]
    order = [index for index, _ in interleave(streams)]
    assert [stream.text for stream in streams] == alone
    assert order[:2] == [0, 1], "both columns fill at once, not one after the other"
    assert mx.default_stream(mx.default_device()) == before


# -- loading, caching, versions --------------------------------------------------------------------------------------
def test_cache_makes_switching_instant_and_reloads_changed_adapters(chat_adapter, tmp_path):
    import shutil

    cache = ModelCache(max_models=2)
    folder = tmp_path / "adapter-copy"
    shutil.copytree(chat_adapter.adapter_dir, folder)
    choice = adapter_choice(folder)
    first = cache.get(choice)
    assert first.load_seconds > 0
    started = time.perf_counter()
    assert cache.get(choice.base()).model is not cache.get(choice).model
    again = cache.get(choice)
    assert again is first and time.perf_counter() - started < 5
    before = time.perf_counter()
    for _ in range(20):
        cache.get(choice)
        cache.get(choice.base())
    assert time.perf_counter() - before < 0.1, "switching between cached models must not reload"
    plain = cache.get(base_choice(str(chat_adapter.model_dir)))
    assert plain.model is cache.get(choice.base()).model, "one base model, whatever data its layout follows"
    assert (plain.layout.data_format, cache.get(choice.base()).layout.data_format) == ("plain", "completions")
    os.utime(folder / "adapters.safetensors", ns=(1, 1))
    assert cache.get(choice) is not first, "a changed adapter file is loaded again"
    assert len(cache) == 2


def test_adapter_folder_errors_are_one_sentence(tmp_path):
    with pytest.raises(ChatError, match="does not exist"):
        adapter_choice(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChatError, match="has no adapters.safetensors"):
        adapter_choice(tmp_path / "empty")


def test_versions_resolve_to_deployed_files_and_training_data(chat_adapter):
    ws = Workspace.open(chat_adapter.workspace)
    named = version_choice(ws, f"v{chat_adapter.version}")
    assert named.adapter_dir == ws.root / "versions" / f"v{chat_adapter.version}" / "adapters"
    assert named.data_dir == chat_adapter.data_dir and named.model == str(chat_adapter.model_dir)
    current = version_choice(ws, "current")
    assert current.adapter_dir == ws.path("versions", "active") and current.version == chat_adapter.version
    with pytest.raises(StudioError, match="There is no version v99"):
        version_choice(ws, "v99")
    labels = [choice.name for choice in workspace_choices(ws)]
    assert labels[0] == f"base {chat_adapter.model_dir.name}"
    assert f"v{chat_adapter.version} (current)" in labels and f"run {chat_adapter.run_id}" in labels
    choice, served = served_choice(ws)
    assert choice.version == chat_adapter.version and choice.role == "current"
    record_served(ws, served, ok=True, latency_ms=12.0)
    from engine.training.deploy import deployment_stats

    assert deployment_stats(ws)["traffic"][f"current:v{chat_adapter.version}"]["requests"] >= 1


def test_no_versions_yet_is_a_clear_sentence(tmp_path):
    ws = Workspace.open(tmp_path / "fresh")
    with pytest.raises(ChatError) as caught:
        version_choice(ws, "v1")
    assert str(caught.value).startswith("No adapter version is deployed in")
    assert str(caught.value).count(". ") == 0


def test_default_base_model_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_CHAT_BASE_MODEL", "/models/tiny")
    assert base_choice().model == "/models/tiny"
    monkeypatch.delenv("STUDIO_CHAT_BASE_MODEL")
    from engine.training.models import DEFAULT_BASE_MODEL, DEFAULT_MODEL_FOLDER

    assert base_choice().model == DEFAULT_BASE_MODEL
    monkeypatch.setenv("STUDIO_MODEL_CACHE", str(tmp_path))
    converted = tmp_path / DEFAULT_MODEL_FOLDER
    assert canonical_model(str(converted)) == DEFAULT_BASE_MODEL, "adapters record the converted folder's path"
    assert canonical_model(str(tmp_path / "other")) == str(tmp_path / "other")


# -- probe -------------------------------------------------------------------------------------------------------------
def test_scores_have_known_values():
    assert chrf("return x", "return x") == 100.0
    assert chrf("abc", "xyz") == 0.0
    # n=1: 2 of 3 chars shared; n=2: 1 of 2 bigrams; n=3: none -> P = R = (2/3 + 1/2 + 0) / 3
    assert chrf("abc", "abd") == pytest.approx(100 * (2 / 3 + 1 / 2) / 3)
    assert chrf("a b c", "abc") == 100.0, "whitespace is ignored"
    assert line_overlap("x = 1\n  y = 2\n", "y = 2\nz = 3\n") == pytest.approx(50.0)
    assert line_overlap("", "a") == 0.0 and line_overlap("a\n\n", "a") == 100.0


def test_probe_shows_the_fine_tuned_model_closer_to_the_real_code(chat_adapter, models):
    _, base, tuned = models
    report = probe([base, tuned], chat_adapter.data_dir, n=2, settings=GenerationSettings(max_tokens=16))
    assert [row.split for row in report.rows] == ["train", "train", "test", "test"]
    held = report.means(held_out=True)
    assert held[tuned.choice.name]["chrf"] > 80 and held[base.choice.name]["chrf"] < 30
    assert report.wins(held_out=True) == (2, 0, 0)
    assert "closer to the real code" in report.verdict()


# -- the verbs ---------------------------------------------------------------------------------------------------------
def test_generate_verb_with_version_adapter_and_base(chat_adapter, capsys):
    ws = str(chat_adapter.workspace)
    assert main(["generate", "--workspace", ws, "--version", "v1", "--prompt", HELD_OUT_PROMPT,
                 "--max-tokens", "20"]) == 0
    out, err = capsys.readouterr()
    assert LEARNED in out and "tok/s" in err and "first token" in err
    assert main(["generate", "--adapter", str(chat_adapter.adapter_dir), "--prompt", HELD_OUT_PROMPT, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert LEARNED in result["answer"] and result["tokens"] >= 4  # one token per word in the tiny vocabulary
    assert result["tokens_per_second"] > 0 and result["first_token_seconds"] > 0
    assert main(["generate", "--model", str(chat_adapter.model_dir), "--data", str(chat_adapter.data_dir),
                 "--prompt", HELD_OUT_PROMPT, "--max-tokens", "20"]) == 0
    assert "canary deploy" not in capsys.readouterr().out


def test_generate_command_line_restarts_with_openblas_on_linux(chat_adapter):
    from engine.processes import openblas_library

    env = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", "STUDIO_NO_REEXEC")}
    done = subprocess.run(
        [sys.executable, "-m", "engine", "generate", "--adapter", str(chat_adapter.adapter_dir), "--prompt",
         HELD_OUT_PROMPT, "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert LEARNED in result["answer"]
    assert result["openblas_preloaded"] is (openblas_library() is not None)


def test_generate_verb_errors(tmp_path, capsys):
    assert main(["generate", "--workspace", str(tmp_path / "ws"), "--version", "v2", "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No adapter version is deployed in") and err.count("\n") == 1
    assert main(["generate", "--adapter", str(tmp_path), "--prompt", "hi"]) == 1
    assert "has no adapters.safetensors" in capsys.readouterr().err


def test_probe_verb_side_by_side(chat_adapter, capsys):
    assert main(["probe", "--workspace", str(chat_adapter.workspace), "--version", "v1", "--n", "1",
                 "--max-tokens", "16"]) == 0
    out = capsys.readouterr().out
    assert "== train #1" in out and "== test #1" in out
    assert re.search(rf"\| .*{LEARNED}", out), out
    assert "closer to the real code" in out
    assert main(["probe", "--adapter", str(chat_adapter.adapter_dir), "--data", str(chat_adapter.data_dir),
                 "--n", "1", "--max-tokens", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["rows"]) == 2 and "closer to" in report["verdict"]
