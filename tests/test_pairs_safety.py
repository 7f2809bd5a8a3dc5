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
