"""Worlds with a token planted in every source (commits, docs, a conversation log, a linked pair's metadata, a widget's
code): the sensitive-data gate tests and the review queue tests build them (tests/test_sensitive_gate.py,
tests/test_review_queue.py)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from tests.data_sensitive import training_pair, write_training_jsonl
from tests.test_collect import world_config, write_log

# Written here from GitHub's documented format (ghp_ + 36 letters and digits); no real token.
TOKEN = "ghp_Q7mZ2xK9vL4rT8wN3cJ6yH1bF5sD0gA2eU7p"
WHEN = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)


def build_leaky_world(tmp_path, git_repo, screenpipe_db):
    """A workspace whose commits, docs, conversation log and linked pairs each hold the token once."""
    repo = git_repo("skycast")
    code = "\n".join(f"def helper_{index}(value):\n    return value + {index}\n" for index in range(4))
    repo.commit("Add helpers for the forecast cache\n\nThey keep the TTL logic in one place.",
                {"cache.py": code}, WHEN)
    repo.commit(f"Add the staging deploy settings\n\nThe pipeline reads GITHUB_TOKEN={TOKEN} until vault is up.",
                {"deploy.py": code.replace("helper", "step")}, WHEN + timedelta(hours=1))
    docs = tmp_path / "world" / "docs"
    docs.mkdir(parents=True)
    (docs / "setup.md").write_text(
        "# Setup\n\n## Caching\n\nThe forecast cache keeps every API answer for ten minutes, keyed by city and "
        "units, so a page reload never calls the upstream API twice in a row.\n\n## Publishing\n\n"
        f"Publishing to the package registry uses the token {TOKEN}; ask Maya before you rotate it, the "
        "release job reads it from the environment.\n", encoding="utf-8")
    answers = [{"messages": [{"role": "user", "content": f"Question {index} about the skycast cache TTL?"},
                             {"role": "assistant", "content": f"Answer {index}: the cache keeps answers for 600 "
                              "seconds under ~/.cache/skycast and refreshes them lazily."}]} for index in range(3)]
    answers.append({"messages": [{"role": "user", "content": "Why does the release script fail on CI?"},
                                 {"role": "assistant", "content": f"Your GITHUB_TOKEN={TOKEN} has expired; "
                                  "create a new one with the repo scope."}]})
    write_log(tmp_path / "world" / "logs" / "chat.jsonl", answers)
    output = tmp_path / "world" / "output" / "training_data.jsonl"
    output.parent.mkdir(parents=True)
    write_training_jsonl(output, pairs=4, secrets=False)
    pair = training_pair(50, random.Random(5))
    pair["metadata"]["sources"][0]["window_name"] = f"iTerm2 — export GITHUB_TOKEN={TOKEN}"
    with output.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(pair) + "\n")
    config = world_config(tmp_path / "world", git_repo=str(repo.path), screenpipe_db=str(screenpipe_db(frames=[])),
                          document_sources={"directories": ["docs"], "extensions": [".md"]},
                          collect={"conversation_logs": ["logs"], "export_min_tier": "raw"})
    return config


def build_widget_world(tmp_path):
    """A widget gallery whose Clock widget carries the token in its JSX."""
    from tests.test_widgets_pipeline import prepare

    built, paths = prepare(tmp_path / "gallery")
    clock = next(paths.downloads.rglob("Clock.widget/index.jsx"))
    clock.write_text(clock.read_text() + f'\nconst GITHUB_TOKEN = "{TOKEN}";\n', encoding="utf-8")
    return paths
