"""The one MLX writer and its split rule: every MLX folder the studio writes (linking's data/, export's
datasets/<name>/, the collected export) goes through engine.dataset.mlx, so the guarantee mlx-lm
needs is pinned here once."""

import json

import pytest

from engine.dataset.mlx import remove_mlx_splits, write_mlx_splits
from engine.dataset.split import split_by_hash
from engine.errors import StudioError


@pytest.mark.parametrize("test_fraction", [0.0, 0.1, 0.5])
def test_two_or_more_pairs_always_give_a_train_and_a_valid_set(test_fraction):
    for size in range(2, 9):
        for offset in range(0, 400, size):
            hashes = [f"{offset + index:040x}" for index in range(size)]
            splits = split_by_hash(hashes, 0.1, test_fraction)
            assert splits["train"] and splits["valid"], (size, offset, splits)
            assert sorted(splits["train"] + splits["valid"] + splits["test"]) == list(range(size))


def test_a_large_set_keeps_the_plain_hash_bands():
    hashes = [f"{index:040x}" for index in range(2000)]
    splits = split_by_hash(hashes, 0.1, 0.1)
    assert 150 < len(splits["valid"]) < 250 and 150 < len(splits["test"]) < 250
    assert split_by_hash(hashes[:1000], 0.1, 0.1)["test"] == [i for i in splits["test"] if i < 1000]


def test_the_writer_writes_each_split_and_removes_a_stale_empty_one(tmp_path):
    (tmp_path / "test.jsonl").write_text('{"prompt": "stale", "completion": "x"}\n')
    lines = [json.dumps({"prompt": f"p{index}", "completion": f"c{index}"}) for index in range(5)]
    splits = write_mlx_splits(tmp_path, lines, [f"{index:040x}" for index in range(5)], 0.2, 0.0)
    assert not (tmp_path / "test.jsonl").exists() and not splits["test"]
    for name in ("train", "valid"):
        written = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        assert written == [lines[index] for index in splits[name]] and written
    remove_mlx_splits(tmp_path)
    assert not any(tmp_path.glob("*.jsonl"))


def test_the_writer_refuses_fewer_than_two_lines(tmp_path):
    with pytest.raises(StudioError, match="at least two"):
        write_mlx_splits(tmp_path, ['{"prompt": "a", "completion": "b"}'], ["0" * 40], 0.1, 0.1)
    assert not any(tmp_path.iterdir())
