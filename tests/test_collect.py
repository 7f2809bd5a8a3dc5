"""Collection on real workspaces: the demo world (real screenpipe DB, real git repo, real link run), real git repos
with messages CommitPackFT would reject, real JSONL logs with broken lines; mlx-lm's own loader on the export."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from engine.__main__ import main
from engine.collect import CollectError, collect, dedup_cleanup, export_training, quality_check
from engine.collect.commits import message_rejection
from engine.collect.docs import split_markdown, split_rst
from engine.config import PipelineConfig
from engine.dataset.review import record_decision
from engine.demo import content as story
from engine.errors import WorkspaceError
from engine.formats import content_hash, pair_hash
from engine.store import Workspace

WHEN = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)


class WordHashEmbedder:
    """A deterministic stand-in for the sentence-transformers model (which the linking tests run for real): texts
    sharing words get similar vectors, so linking still finds the screens behind each commit, in a second."""

    model_id = "word-hash-test"
    dim = 256

    def chunk(self, texts):
        return [[text] for text in texts]

    def encode(self, texts):
        rows = []
        for text in texts:
            vector = np.zeros(self.dim, dtype=np.float32)
            for word in re.findall(r"[a-z0-9_]{3,}", text.lower()):
                vector[int(hashlib.sha1(word.encode()).hexdigest()[:8], 16) % self.dim] += 1
            norm = np.linalg.norm(vector)
            rows.append(vector / norm if norm else vector)
        return np.stack(rows)


@pytest.fixture(scope="module")
def linked_demo(tmp_path_factory) -> Path:
    """The demo world extracted and linked once (a real link run, pairs in paths.output_file); tests work on
    copies of it."""
    from engine.demo import build_demo
    from engine.extract import extract
    from engine.pipeline import link_and_write

    config_path = build_demo(tmp_path_factory.mktemp("linked") / "demo")
    config = PipelineConfig.load(config_path)
    extract(config, config.workspace)
    link_and_write(config, config.workspace, embedder=WordHashEmbedder())
    return config_path.parent


def copy_of(world: Path, tmp_path: Path) -> tuple[PipelineConfig, Path]:
    target = tmp_path / "demo"
    shutil.copytree(world, target, symlinks=True)
    config = PipelineConfig.load(target / "pipeline_config.json")
    return config, config.workspace


def rows(workspace: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(workspace / "studio.db") as conn:
        return conn.execute(sql, params).fetchall()


def world_config(root: Path, **sections) -> PipelineConfig:
    """A config in `root` with a workspace there, no screenpipe data and no docs unless given."""
    raw = {"paths": {"screenpipe_db": sections.pop("screenpipe_db", "none.sqlite"),
                     "git_repo": sections.pop("git_repo", "."),
                     "output_file": sections.pop("output_file", "output/training_data.jsonl")},
           "studio": {"workspace": "workspace"}, **sections}
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline_config.json").write_text(json.dumps(raw), encoding="utf-8")
    return PipelineConfig.load(root / "pipeline_config.json")


def write_log(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def chat(question: str, answer: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], **extra}


# -- the demo world --------------------------------------------------------------------------------------------------
def test_demo_collects_every_source_with_counted_reasons(linked_demo, tmp_path):
    config, workspace = copy_of(linked_demo, tmp_path)
    result = collect(config, workspace)
    report = result.to_dict()["sources"]

    commits = rows(workspace, "SELECT sha, message FROM commits")
    assert report["commits"]["read"] == len(commits) == len(story.COMMITS)
    subjects = {sha: message.splitlines()[0] for sha, message in commits}
    not_verbs = {subjects[sha] for sha in result.sources["commits"].filtered_examples[
        "subject does not start with an imperative verb"]}
    lowercase = {subjects[sha] for sha in result.sources["commits"].filtered_examples[
        "subject does not start with an uppercase letter"]}
    assert {subject.split()[0] for subject in not_verbs} == {"Initial", "Typed", "Wind", "Dark", "SVG"}
    assert {subject.split()[0] for subject in lowercase} == {"ForecastCard:", "useForecast", "skycast-bar:"}
    assert report["commits"]["filtered"] == {"subject does not start with an imperative verb": 9,  # 5 examples kept
                                             "subject does not start with an uppercase letter": 3,
                                             "diff too large (over 4,096 tokens)": 1}
    assert report["commits"]["new"] == len(commits) - 13 and report["commits"]["duplicates"] == 0

    assert report["docs"] == {**report["docs"], "read": 15, "new": 14,
                              "filtered": {"section shorter than 80 characters": 1}}
    conversations = report["conversations"]
    assert conversations["read"] == len(story.CONVERSATIONS) + 2  # one logged twice, one cut off
    assert conversations["duplicates"] == 1
    assert conversations["filtered"] == {"negative feedback": 1, "malformed line: not valid JSON": 1,
                                         "assistant reply shorter than 10 characters": 1}
    assert conversations["new"] == len(story.CONVERSATIONS) - 2
    [detail] = conversations["filtered_details"]["malformed line: not valid JSON"]
    assert detail.startswith(f"conversations/assistant.jsonl: line {story.MALFORMED_AT} is not valid JSON")

    pairs = [json.loads(line) for line in config.output_file.read_text().splitlines()]
    assert report["linked"]["new"] == len(pairs) > 20
    assert result.total_new == sum(source["new"] for source in report.values())

    stored = rows(workspace, "SELECT source, format, tier, tokens, chars, created_at, human_reviewed, content_hash,"
                             " record_json FROM examples")
    assert len(stored) == result.total_new
    assert {(source, fmt) for source, fmt, *_ in stored} == {
        ("commits", "instruction"), ("docs", "instruction"), ("conversations", "chat"), ("linked", "instruction")}
    assert {tier for _, _, tier, *_ in stored} <= {"silver", "bronze"}  # nobody reviewed anything: no gold
    assert all(tokens > 0 and chars > tokens and human == 0 for _, _, _, tokens, chars, _, human, _, _ in stored)
    linked_hashes = {digest for source, _, _, _, _, _, _, digest, _ in stored if source == "linked"}
    assert linked_hashes == {pair_hash(pair) for pair in pairs}  # the key review decisions use

    commit_example = next(json.loads(record) for source, *_, record in stored if source == "commits"
                          and json.loads(record)["output"].startswith("Add `python -m skycast`"))
    assert commit_example["instruction"] == "Given these code changes in skycast, write a commit message."
    # The diff comes from the repository, so it shows cli.py although extract kept only __main__.py (min_code_lines).
    assert commit_example["input"].splitlines()[:3] == [
        "skycast/__main__.py | 8 ++++++++", "skycast/cli.py      | 2 ++",
        "2 files changed, 10 insertions(+), 0 deletions(-)"]
    assert '+    parser.add_argument("--version", action="version"' in commit_example["input"]
    doc = next(json.loads(record) for source, *_, record in stored if source == "docs"
               and json.loads(record)["metadata"]["section"] == "What we never retry")
    assert doc["instruction"] == ('In the skycast docs, what does "Retry policy for calls to Open-Meteo" '
                                  '(docs/retry-policy.md) say about "What we never retry"?')
    assert doc["output"].startswith("- 4xx answers (400 for a bad parameter") and "##" not in doc["output"]


def test_second_run_adds_nothing_and_counts_what_it_already_has(linked_demo, tmp_path):
    config, workspace = copy_of(linked_demo, tmp_path)
    first = collect(config, workspace)
    second = collect(config, workspace)
    assert second.total_new == 0
    for name, tally in second.sources.items():
        assert tally.duplicates == first.sources[name].new + first.sources[name].duplicates, name
        assert tally.filtered == first.sources[name].filtered, name
    assert rows(workspace, "SELECT COUNT(*) FROM examples")[0][0] == first.total_new
    assert [run[0] for run in rows(workspace, "SELECT id FROM collect_runs ORDER BY id")] == [1, 2]
    report = json.loads(rows(workspace, "SELECT report_json FROM collect_runs WHERE id = 2")[0][0])
    assert report["total_new"] == 0 and report["run_id"] == 2


def test_a_failing_run_leaves_the_workspace_unchanged(linked_demo, tmp_path):
    config, workspace = copy_of(linked_demo, tmp_path)
    with sqlite3.connect(workspace / "studio.db") as conn:  # the disk fills up while conversations are stored
        conn.execute("CREATE TRIGGER full_disk BEFORE INSERT ON examples WHEN NEW.source = 'conversations'"
                     " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    with pytest.raises(WorkspaceError, match="nothing was changed, so running collect again is safe"):
        collect(config, workspace)
    assert rows(workspace, "SELECT COUNT(*) FROM examples") == [(0,)]  # commits and docs went in first: rolled back
    assert rows(workspace, "SELECT COUNT(*) FROM collect_runs") == [(0,)]
    with sqlite3.connect(workspace / "studio.db") as conn:
        conn.execute("DROP TRIGGER full_disk")
    assert collect(config, workspace).total_new > 50


def test_reviews_make_gold_or_drop_and_quality_check_reports_changes(linked_demo, tmp_path):
    config, workspace = copy_of(linked_demo, tmp_path)
    collect(config, workspace)
    linked = rows(workspace, "SELECT content_hash, tier FROM examples WHERE source = 'linked' ORDER BY id")
    (good, _), (bad, _) = linked[0], linked[1]
    ws = Workspace.open(workspace)
    record_decision(ws, good, "good", "priya")
    record_decision(ws, bad, "bad", "priya")
    result = quality_check(config, workspace)
    assert result["checked"] == sum(result["by_tier"].values()) == len(rows(workspace, "SELECT id FROM examples"))
    assert result["changed"] == 2 and result["dropped"] == 1 and result["human_reviewed"] == 1
    assert rows(workspace, "SELECT tier, human_reviewed, dropped FROM examples WHERE content_hash = ?", (good,)) == [
        ("gold", 1, 0)]
    assert rows(workspace, "SELECT tier, quality_score, dropped, quality_reasons FROM examples WHERE content_hash = ?",
                (bad,)) == [("raw", 0.0, 1, '["reviewer marked bad"]')]
    assert quality_check(config, workspace)["changed"] == 0  # nothing new: nothing changes
    exported = export_training(config.with_values({"collect.export_min_tier": "raw"}), workspace)
    # the demo plants secrets and PII for review: examples holding them wait for a reviewer, outside the export
    held = exported["excluded"].pop("possible sensitive data, not reviewed")
    assert held > 0 and exported["excluded"] == {"dropped by the quality check": 1}


def test_export_is_a_folder_mlx_lm_loads_in_chat_and_completions_format(linked_demo, tmp_path):
    from mlx_lm.tuner.datasets import load_dataset
    from transformers import AutoTokenizer

    from tests.tiny_model import build_tiny_model

    config, workspace = copy_of(linked_demo, tmp_path)
    collect(config, workspace)
    exportable = rows(workspace, "SELECT COUNT(*) FROM examples WHERE duplicate_of IS NULL AND dropped = 0"
                                 " AND tier IN ('gold', 'silver', 'bronze') AND sensitive = 0")[0][0]
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    folder = workspace / "datasets" / "collected"
    for fmt, dataset_type in (("chat", "ChatDataset"), ("completion", "CompletionsDataset")):
        result = export_training(config.with_values({"collect.export_format": fmt}), workspace)
        assert result["written"] and result["folder"] == str(folder)
        assert sum(result["counts"].values()) == result["examples"] == exportable
        assert sorted(path.name for path in folder.iterdir()) == ["by_source", "manifest.json", "test.jsonl",
                                                                  "train.jsonl", "valid.jsonl"]
        args = types.SimpleNamespace(data=str(folder), train=True, test=True, hf_dataset=None, mask_prompt=False)
        train, valid, test = load_dataset(args, tokenizer)
        assert type(train).__name__ == dataset_type
        assert (len(train), len(valid), len(test)) == (result["counts"]["train"], result["counts"]["valid"],
                                                       result["counts"]["test"])
        tokens, _ = train.process(train[0])
        assert len(tokens) > 20
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["counts"] == result["counts"] and manifest["format"] == fmt
    assert not list(folder.parent.glob(".collected*")), "no staging folder left behind"
    # Beside the mlx-lm files, the same examples in their own format (seed 002's shapes), tagged per source.
    native = {path.stem: [json.loads(line) for line in path.read_text().splitlines()]
              for path in (folder / "by_source").iterdir()}
    assert result["by_source_files"] == sorted(f"by_source/{name}.jsonl" for name in native)
    assert {name: len(records) for name, records in native.items()} == result["by_source"]
    for name, records in native.items():
        for record in records:
            assert record["metadata"]["source"] == name
            assert record["metadata"]["quality_tier"] in ("gold", "silver", "bronze")
            assert 0 <= record["metadata"]["quality_score"] <= 1
            if name == "conversations":
                assert [m["role"] for m in record["messages"]][-1] == "assistant"
            else:
                assert {"instruction", "input", "output"} <= set(record) and record["output"].strip()
    assert {"commits", "docs", "conversations", "linked"} <= set(native)
    # The split follows content hashes: exporting again puts every example where it was.
    before = {name: (folder / f"{name}.jsonl").read_text() for name in ("train", "valid", "test")}
    export_training(config.with_values({"collect.export_format": "completion"}), workspace)
    assert before == {name: (folder / f"{name}.jsonl").read_text() for name in ("train", "valid", "test")}


def test_cli_collect_prints_the_table_and_json(linked_demo, tmp_path, capsys):
    config, workspace = copy_of(linked_demo, tmp_path)
    assert main(["collect", "--config", str(config.path), "--sources", "conversations,docs"]) == 0
    out = capsys.readouterr().out
    assert "  conversations          15       11        1         3" in out
    assert f"conversations/assistant.jsonl: line {story.MALFORMED_AT} is not valid JSON" in out
    assert "New examples: 25 (gold 0, silver 22, bronze 3, raw 0)" in out
    assert main(["collect", "--config", str(config.path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["sources"]["conversations"]["new"] == 0 and document["sources"]["commits"]["new"] == 18
    assert document["total_new"] == sum(source["new"] for source in document["sources"].values())


def test_cli_bad_input_is_one_sentence(tmp_path, capsys):
    config = world_config(tmp_path / "world", collect={"conversation_logs": ["logs/missing.jsonl"]})
    assert main(["collect", "--config", str(config.path), "--sources", "conversations"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: `collect.conversation_logs[0]`: {tmp_path / 'world/logs/missing.jsonl'} does not exist; "
                   "point it at a JSONL file or a folder of .jsonl files, or remove it from the list.")
    assert not (tmp_path / "world" / "workspace").exists(), "a bad input never touches the workspace"
    assert main(["collect", "--config", str(config.path), "--sources", "commits,tweets"]) == 1
    assert capsys.readouterr().err.strip() == ("error: Unknown source 'tweets'; collect reads commits, docs, "
                                               "conversations, linked.")


# -- commits ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("message", "reason"), [
    ("Add retry with backoff to the HTTP client", None),
    ("[skip ci] Add retry with backoff to the HTTP client", None),
    ("[client] Add retry with backoff to the HTTP client", None),
    ("client.py: Add retry with backoff to the client", None),
    ("feat(client): add retry with backoff to requests", None),
    ("client.py: add retry with backoff to the client", "subject does not start with an uppercase letter"),
    ("Fix", "message shorter than 10 characters"),
    ("Merge branch 'main' into feature/retry", "merge commit"),
    ("Merge pull request #12 from maya/retry", "merge commit"),
    ("Update README.md", "generic message"),
    ("Update src/cache.py", "generic message"),
    ("wip", "message shorter than 10 characters"),
    ("Initial commit", "generic message"),
    ("Add files via upload", "generic message"),
    ("Bump version to 1.4.2", "version bump"),
    ("Release v2.0.0", "version bump"),
    ("Revert 3f2a9c1 because it broke the build", "message contains a commit SHA"),
    ("Fix the parser\n\n(cherry picked from commit deadbeefcafe)", "cherry-picked commit"),
    ("Add the OAuth flow described at https://example.com/oauth", "message contains a URL"),
    ("Retry logic", "subject under 4 words"),
    ("Refactored the retry loop into a helper", "subject does not start with an imperative verb"),
    ("The retry loop now waits longer", "subject does not start with an imperative verb"),
    ("x" * 10_001, "message longer than 10,000 characters"),
])
def test_commit_messages_are_filtered_like_commitpackft(message, reason):
    assert message_rejection(message, 10) == reason


def test_commit_examples_from_a_real_repository(git_repo, screenpipe_db, tmp_path):
    from engine.extract import extract

    repo = git_repo("weatherly")
    repo.git("remote", "add", "origin", "https://github.com/acme/weatherly.git")
    code = "\n".join(f"def helper_{index}(value):\n    return value + {index}\n" for index in range(4))
    good = repo.commit("Add helpers for the forecast cache\n\nThey keep the TTL logic in one place.",
                       {"cache.py": code, "README.md": "# weatherly\n\nNow with a cache.\n"}, WHEN)
    repo.commit("work in progress", {"cache.py": code + "\ndef more():\n    return 1\n" * 3},
                WHEN + timedelta(hours=1))
    repo.commit("Update cache.py", {"cache.py": code + "\n# tuned\n" * 9}, WHEN + timedelta(hours=2))
    huge = "\n".join(f"VALUE_{index} = {index * 7919} + compute_something_long({index}, 'label {index}')"
                     for index in range(2_000))
    repo.commit("Add the generated lookup table for forecasts", {"table.py": huge}, WHEN + timedelta(hours=3))
    config = world_config(tmp_path / "world", git_repo=str(repo.path),
                          screenpipe_db=str(screenpipe_db(frames=[])))
    extract(config, config.workspace)
    result = collect(config, config.workspace, sources=["commits"])
    tally = result.sources["commits"]
    assert (tally.read, tally.new) == (4, 1)
    assert dict(tally.filtered) == {"generic message": 2, "diff too large (over 4,096 tokens)": 1}
    [(record,)] = rows(config.workspace, "SELECT record_json FROM examples WHERE origin = ?", (good,))
    example = json.loads(record)
    assert example["instruction"] == "Given these code changes in weatherly, write a commit message."
    assert example["output"] == "Add helpers for the forecast cache\n\nThey keep the TTL logic in one place."
    assert example["input"].splitlines()[:3] == ["README.md | 3 +++", "cache.py  | 11 +++++++++++",
                                                 "2 files changed, 14 insertions(+), 0 deletions(-)"]
    assert "+def helper_3(value):" in example["input"] and "+Now with a cache." in example["input"]
    assert example["metadata"]["has_body"] is True and example["metadata"]["diff_truncated"] is False


def test_commits_whose_repository_is_gone_use_the_stored_code_files(git_repo, screenpipe_db, tmp_path):
    from engine.extract import extract

    repo = git_repo("gone")
    code = "\n".join(f"def step_{index}():\n    return {index}" for index in range(6))
    sha = repo.commit("Add the six steps of the import pipeline", {"steps.py": code, "NOTES.md": "notes\n"}, WHEN)
    config = world_config(tmp_path / "world", git_repo=str(repo.path), screenpipe_db=str(screenpipe_db(frames=[])))
    extract(config, config.workspace)
    shutil.rmtree(repo.path)
    result = collect(config, config.workspace, sources="commits")
    assert result.sources["commits"].new == 1
    assert result.notes == ["commits: 1 commit(s) are no longer in their repository; their message was paired with "
                            "the code files extract stored"]
    [(record,)] = rows(config.workspace, "SELECT record_json FROM examples WHERE origin = ?", (sha,))
    example = json.loads(record)
    assert example["instruction"] == "Given these code changes in gone, write a commit message."
    assert example["input"].splitlines()[:2] == [  # NOTES.md is not a code file: extract did not store it
        "steps.py | 12 ++++++++++++", "1 file changed, 12 insertions(+), 0 deletions(-)"]


# -- docs ------------------------------------------------------------------------------------------------------------
def test_markdown_splits_at_headings_but_not_inside_code():
    text = ("# Guide\n\nIntro text.\n\n## Install\n\n```sh\n# not a heading\npip install x\n```\n\nSetup\n-----\n\n"
            "Under a setext heading.\n\n### Deeper\n\nNested text.\n\n## Use\n\nRun it.\n")
    sections = split_markdown(text)
    assert [(section.path, section.text.splitlines()[0] if section.text else "") for section in sections] == [
        ([], ""), (["Guide"], "Intro text."), (["Guide", "Install"], "```sh"),
        (["Guide", "Setup"], "Under a setext heading."), (["Guide", "Setup", "Deeper"], "Nested text."),
        (["Guide", "Use"], "Run it.")]
    assert "# not a heading" in sections[2].text
    rst = split_rst("Title\n=====\n\nIntro.\n\nPart\n----\n\nBody of part.\n")
    assert [(section.path, section.text) for section in rst] == [
        ([], ""), (["Title"], "Intro."), (["Title", "Part"], "Body of part.")]


# -- conversations ---------------------------------------------------------------------------------------------------
def test_conversation_logs_skip_bad_lines_with_their_reason_and_line(tmp_path):
    answer = "Use the cache: answers are kept for ten minutes, so a status bar never exceeds the rate limit."
    logs = tmp_path / "world" / "logs"
    write_log(logs / "a.jsonl", [
        chat("How long are answers cached?", answer, feedback="positive", timestamp="2026-10-01T10:00:00Z"),
        '{"messages": [{"role": "user", "content": "cut',
        "[1, 2, 3]",
        "",
        {"prompt": "no messages here"},
        {"messages": [{"role": "tool", "content": "{}"}, {"role": "assistant", "content": answer}]},
        {"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": answer}]},
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "system", "content": "Be brief."},
                      {"role": "assistant", "content": answer}]},
        {"messages": [{"role": "user", "content": "Anything?"}]},
        chat("Why is the week off by a day in Tokyo?", "Pass timezone=auto: days are then the place's own days.",
             feedback=False),
    ])
    write_log(logs / "nested" / "b.jsonl", [
        {"timestamp": 1790000000, "feedback": {"rating": 5},
         "messages": [{"role": "system", "content": "You help with skycast."},
                      {"role": "user", "content": [{"type": "text", "text": "Which statuses are retried?"}]},
                      {"role": "assistant", "content": "502, 503 and 504, up to four attempts with jitter."},
                      {"role": "user", "content": "Thanks, and 429?"}]},
    ])
    (logs / "notes.txt").write_text("not a log", encoding="utf-8")
    config = world_config(tmp_path / "world", collect={"conversation_logs": ["logs"]})
    result = collect(config, config.workspace, sources="conversations")
    tally = result.sources["conversations"]
    assert tally.read == 10 and tally.new == 2  # the blank line is not a conversation; notes.txt is not a log
    assert dict(tally.filtered) == {
        "malformed line: not valid JSON": 1, "malformed line: not a JSON object": 1, "no messages list": 1,
        "message with an unsupported role": 1, "empty message": 1, "system message not first": 1,
        "no user question with an assistant reply": 1, "negative feedback": 1}
    assert tally.filtered_examples["malformed line: not valid JSON"] == ["logs/a.jsonl:2"]
    assert tally.filtered_details["malformed line: not a JSON object"] == [
        "logs/a.jsonl: line 3 is a JSON array, expected an object"]
    assert tally.filtered_examples["no messages list"] == ["logs/a.jsonl:5"]
    stored = {origin: json.loads(record) for origin, record in rows(
        config.workspace, "SELECT origin, record_json FROM examples")}
    assert set(stored) == {"logs/a.jsonl:1", "logs/nested/b.jsonl:1"}
    nested = stored["logs/nested/b.jsonl:1"]
    assert [message["role"] for message in nested["messages"]] == ["system", "user", "assistant"]  # unanswered: cut
    assert nested["messages"][1]["content"] == "Which statuses are retried?"
    assert nested["metadata"]["feedback"] == "positive"
    assert nested["metadata"]["timestamp"] == "2026-09-21T14:13:20.000000+00:00"
    assert rows(config.workspace, "SELECT source_time FROM examples WHERE origin = 'logs/a.jsonl:1'") == [
        ("2026-10-01T10:00:00.000000+00:00",)]


def test_sensitive_conversations_are_held_from_export_until_reviewed(tmp_path):
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    answers = [chat(f"Question {index} about the skycast cache and its ten minute TTL?",
                    f"Answer {index}: the cache keeps every API answer for 600 seconds under ~/.cache/skycast.")
               for index in range(3)]
    leaky = chat("Why does the release script fail?", f"Your GITHUB_TOKEN={token} is expired; create a new one.")
    write_log(tmp_path / "world" / "log.jsonl", [*answers, leaky])
    config = world_config(tmp_path / "world", collect={"conversation_logs": ["log.jsonl"]})
    collect(config, config.workspace)
    flagged = content_hash(json.loads(rows(config.workspace, "SELECT record_json FROM examples WHERE sensitive > 0"
                                           )[0][0]), "chat")
    first = export_training(config, config.workspace)
    assert first["examples"] == 3 and first["excluded"] == {"possible sensitive data, not reviewed": 1}
    record_decision(Workspace.open(config.workspace), flagged, "redact", "maya")
    second = export_training(config, config.workspace)
    assert second["examples"] == 4 and second["redacted"] == 1
    written = "".join((config.workspace / "datasets/collected" / f"{name}.jsonl").read_text()
                      for name in ("train", "valid", "test") if (config.workspace / f"datasets/collected/{name}.jsonl"
                                                                 ).exists())
    assert token not in written and "<GITHUB_TOKEN_1>" in written


def test_export_with_fewer_than_two_examples_writes_nothing_and_removes_a_stale_export(tmp_path):
    write_log(tmp_path / "world" / "log.jsonl", [chat("How long are answers cached?", "Ten minutes, DEFAULT_TTL.")])
    config = world_config(tmp_path / "world", collect={"conversation_logs": ["log.jsonl"]})
    stale = config.workspace / "datasets" / "collected"
    stale.mkdir(parents=True)
    (stale / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    collect(config, config.workspace)
    result = export_training(config, config.workspace)
    assert not result["written"] and result["examples"] == 1 and result["counts"] == {"train": 0, "valid": 0,
                                                                                      "test": 0}
    assert "mlx-lm needs at least two" in result["reason"]
    assert not stale.exists()


# -- linked pairs from paths.output_file and near duplicates --------------------------------------------------------
def test_linked_pairs_from_the_output_file_and_dedup(linked_demo, tmp_path):
    pairs = [json.loads(line) for line in (linked_demo / "output/training_data.jsonl").read_text().splitlines()]
    near = {**pairs[0], "input": pairs[0]["input"] + " (again)"}  # the same screen captured a moment later
    output = tmp_path / "world" / "pairs.jsonl"
    output.parent.mkdir(parents=True)
    output.write_text("".join(json.dumps(pair) + "\n" for pair in [*pairs[:5], near]) + "{broken\n",
                      encoding="utf-8")
    config = world_config(tmp_path / "world", output_file="pairs.jsonl")
    result = collect(config, config.workspace, sources=["linked"])
    tally = result.sources["linked"]
    assert (tally.read, tally.new, dict(tally.filtered)) == (7, 6, {"malformed line: not valid JSON": 1})
    assert any("pairs read from" in note for note in result.notes)
    cleaned = dedup_cleanup(config, config.workspace)
    assert cleaned["checked"] == 6 and cleaned["duplicates_marked"] == 1 and cleaned["near"] == 1
    marked = rows(config.workspace, "SELECT content_hash, duplicate_of FROM examples WHERE duplicate_of IS NOT NULL")
    assert marked[0][0] == pair_hash(near)
    again = dedup_cleanup(config, config.workspace)
    assert again["duplicates_marked"] == 0 and again["duplicates_total"] == 1
    first, second = [row[0] for row in rows(config.workspace, "SELECT id FROM examples ORDER BY id LIMIT 2")]
    with sqlite3.connect(config.workspace / "studio.db") as conn:  # a mark that no longer holds
        conn.execute("UPDATE examples SET duplicate_of = ? WHERE id = ?", (first, second))
    assert dedup_cleanup(config, config.workspace)["duplicates_cleared"] == 1
    assert rows(config.workspace, "SELECT COUNT(*) FROM examples WHERE duplicate_of IS NOT NULL") == [(1,)]
    assert export_training(config, config.workspace)["excluded"] == {"duplicate": 1}


def test_collect_errors_are_plain_sentences(tmp_path):
    config = world_config(tmp_path / "world")
    with pytest.raises(CollectError, match=r"^No source to collect from; name one or more of commits, docs"):
        collect(config, config.workspace, sources=[])
    empty = collect(config, config.workspace)  # nothing extracted yet: zeros and notes saying what to run
    assert empty.total_new == 0 and all(tally.read == 0 for tally in empty.sources.values())
    assert any("run `python -m engine extract` first" in note for note in empty.notes)
    (tmp_path / "world" / "logs").mkdir()
    folder_only = config.with_values({"collect.conversation_logs": ["logs"]})
    assert collect(folder_only, config.workspace, sources="conversations").notes == [
        "conversations: the folders in collect.conversation_logs hold no .jsonl files yet"]
