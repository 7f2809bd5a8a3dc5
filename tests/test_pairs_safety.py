"""Linking's MLX folder never carries a pair with possible sensitive data: such pairs wait for review."""

import json

from engine.dataset.pairs import write_mlx_folder


def pair(index: int, output: str) -> dict:
    return {"instruction": f"Add retry number {index} to the forecast client",
            "input": f"Screen Context from Code - client.py\\n\\nretry {index}\\n\\nTask: Modify client.py",
            "output": output, "metadata": {"commit_sha": f"{index:040x}", "file_path": "client.py"}}


def test_pairs_with_secrets_are_held_back_from_the_mlx_folder(tmp_path):
    secret = "AKIA" + "Q7XZ4MBL2RTW9KPN"  # an AWS access key id shape, not a documented example
    pairs = [pair(i, f"def retry_{i}():\n    return {i}\n") for i in range(6)]
    pairs.append(pair(99, f'AWS_ACCESS_KEY_ID = "{secret}"\nclient = boto3.client("s3")\n'))
    folder, counts = write_mlx_folder(pairs, tmp_path / "data", valid_fraction=0.2)
    assert counts["held_for_review"] == 1
    assert counts["train"] + counts["valid"] == 6
    written = (folder / "train.jsonl").read_text() + (folder / "valid.jsonl").read_text()
    assert secret not in written
    assert all("prompt" in json.loads(line) for line in written.splitlines())


def test_pairs_scanned_in_parts_are_held_exactly_as_when_scanned_whole(tmp_path):
    """Linking scans a pair's parts (message, each linked screen's block, code, task line, metadata) once each, with
    the workspace's scan cache; the decisions must be those of scanning every pair whole."""
    from engine.dataset.pairs import _flagged
    from engine.store import Workspace

    token = "ghp_" + "Zq8wL2vR7nK4xT9mB3cY6dF1hJ5sA0pE2uG8"
    screens = ["Screen Context from Firefox - Issue #7\n\nretry on 503 with backoff",
               f"Screen Context from iTerm2 - zsh\n\n$ export GITHUB_TOKEN={token}",
               "Discussion (audio, Microphone)\n\nlet us ship the retry today"]
    pairs, contexts = [], []
    for index, blocks in enumerate([[screens[0]], [screens[0], screens[1]], [screens[2]], [screens[2]]]):
        for name in ("client.py", "retry.py"):
            code = f"def step_{index}():\n    return {index}\n"
            if index == 3 and name == "retry.py":
                code = f'TOKEN = "{token}"\n'
            pairs.append({"instruction": f"Retry commit {index}", "output": code,
                          "input": "\n\n".join(blocks) + f"\n\nTask: Modify {name}",
                          "metadata": {"commit_sha": f"{index:040x}", "file_path": name,
                                       "sources": [{"window_name": block.split("\n")[0]} for block in blocks]}})
            contexts.append(blocks)
    workspace = Workspace.open(tmp_path / "ws")
    in_parts = _flagged(pairs, contexts, workspace)
    whole = _flagged(pairs, None, None)
    assert in_parts == whole == [False, False, True, True, False, False, False, True]
    assert _flagged(pairs, contexts, workspace) == in_parts  # again, from the cache
    with workspace.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM sensitive_scans").fetchone()[0] > 0
