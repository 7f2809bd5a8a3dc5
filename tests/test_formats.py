"""engine/formats.py decides what a record's format is, whether it holds up, what its identity is and which of its
texts a model trains on; the gate, redaction, collection, validation, chat and training all read these answers."""

from __future__ import annotations

import pytest

from engine.formats import (
    content_hash,
    format_problems,
    malformed_reason,
    mlx_record_format,
    pair_hash,
    read_jsonl,
    record_format,
    to_chat_line,
    to_completion_line,
    training_texts,
)

PAIR = {"instruction": "Add retries", "input": "Task: Modify client.py", "output": "def get(): ...",
        "metadata": {"commit_sha": "a" * 40}}
CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why retries?"},
                     {"role": "assistant", "content": "Flaky network."}]}


@pytest.mark.parametrize(("record", "mlx", "studio"), [
    ({"prompt": "p", "completion": "c", "messages": []}, "completions", "completions"),  # mlx-lm's order
    (CHAT, "chat", "chat"),
    ({"text": "t"}, "text", "text"),
    (PAIR, None, "seed"),
    ({"question": "q"}, None, None)])
def test_detection_follows_mlx_lm_and_knows_the_seeds_pairs(record, mlx, studio):
    assert mlx_record_format(record) == mlx
    assert record_format(record) == studio


def test_one_check_per_format_names_the_field_that_is_wrong():
    assert format_problems(PAIR) == format_problems(PAIR, "instruction") == []
    assert format_problems({"instruction": " ", "output": 3}) == ["empty instruction", "output is a int, not text"]
    assert format_problems({"prompt": "p", "completion": ""}, "completion") == ["completion is missing or empty"]
    assert format_problems(CHAT, "chat") == []
    assert format_problems({"messages": [{"role": "assistent", "content": "x"}]}, "chat") == [
        "message 1 has role 'assistent', not system, user or assistant"]
    assert format_problems({"messages": [{"role": "user", "content": "x"}]}, "chat") == ["no assistant message"]


def test_the_hash_is_the_content_not_the_metadata():
    other = {**PAIR, "metadata": {"commit_sha": "b" * 40}}
    assert content_hash(PAIR, "instruction") == pair_hash(PAIR) == content_hash(other, "instruction")
    assert content_hash(CHAT, "chat") != content_hash({"prompt": "Why retries?", "completion": "Flaky network."},
                                                      "completion")


def test_conversions_keep_the_prompt_and_the_answer():
    assert to_completion_line(PAIR, "instruction") == {"prompt": "Add retries\n\nTask: Modify client.py",
                                                       "completion": "def get(): ..."}
    assert to_chat_line(PAIR, "instruction")["messages"][1] == {"role": "assistant", "content": "def get(): ..."}
    assert to_completion_line(CHAT, "chat") == {"prompt": "System: Be brief.\n\nUser: Why retries?",
                                                "completion": "Flaky network."}


def test_the_texts_a_model_trains_on_are_named_by_path_metadata_aside():
    assert training_texts(PAIR) == [("instruction", "Add retries"), ("input", "Task: Modify client.py"),
                                    ("output", "def get(): ...")]
    assert [path for path, _ in training_texts(CHAT)] == ["messages[0].content", "messages[1].content",
                                                          "messages[2].content"]
    assert training_texts([{"role": "user", "content": "hi"}, {"role": "assistant", "tools": []}]) == [
        ("[0].content", "hi")]
    assert training_texts("not a record") == []


def test_a_bad_jsonl_line_is_a_counted_reason_not_an_exception(tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_bytes(b'{"text": "ok"}\n{"text": \n[1, 2]\n')
    lines = list(read_jsonl(file))
    assert [line.record for line in lines] == [{"text": "ok"}, None, None]
    assert [malformed_reason(line.error) for line in lines[1:]] == ["malformed line: not valid JSON",
                                                                    "malformed line: not a JSON object"]
