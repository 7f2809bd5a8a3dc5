"""The post-training generation check asks completions data the way mlx-lm trained it: as a chat user turn."""

from transformers import AutoTokenizer

from engine.training.evaluate import generation_prompts
from tests.tiny_model import build_tiny_model


def test_completion_records_are_prompted_through_the_chat_template(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    record = {"prompt": "Add retry to fetch_forecast", "completion": "def fetch_forecast(): ..."}
    prompt = generation_prompts([record], tokenizer, 1)[0]
    expected = tokenizer.apply_chat_template([{"role": "user", "content": record["prompt"]}],
                                             add_generation_prompt=True, tokenize=False)
    assert prompt == expected and prompt != record["prompt"]
    assert generation_prompts([{"text": "abcdefgh"}], tokenizer, 1) == ["abcd"]
