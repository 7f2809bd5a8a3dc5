"""Shared by the chat tests: a tiny model, a distinctive dataset, and an adapter trained on it once per session
with the real launcher (real mlx-lm LoRA), deployed as version v1 in a workspace.

The dataset is in the seeds' layout (Instruction / Input / Task: Modify <file> prompts) and every answer is the
same distinctive line, ANSWER, which a random tiny model never produces: after training, the adapter must.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.tiny_model import _WORDS, build_tiny_model

ANSWER = "adapter canary deploy return version"
LEARNED = "canary deploy return version"  # what any answer shaped by the adapter holds; the base model never says it
# Words of ANSWER never appear in prompts, so only training can make the model say them.
PROMPT_WORDS = [word for word in _WORDS if word not in ANSWER.split()]
TRAIN_OVERRIDES = {
    "iters": 500, "learning_rate": 1e-3, "batch_size": 8, "num_layers": 2, "mask_prompt": True,
    "steps_per_report": 100, "steps_per_eval": 250, "val_batches": 2, "eval_batches": 2, "save_every": 1000,
    "generation_prompts": 2, "generation_tokens": 12,
}


def seed_style_prompt(word: str) -> str:
    return (f"Instruction: update {word} handling\nInput: screen shows {word} error\n\nTask: Modify src/{word}.py\n"
            f"Output:")


def write_distinctive_data(folder: Path, seed: int = 3) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 60), ("valid", 8), ("test", 8)):
        lines = [json.dumps({"prompt": seed_style_prompt(rng.choice(PROMPT_WORDS)), "completion": ANSWER})
                 for _ in range(count)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def sharpen_output_head(model_dir: Path, factor: float = 8.0) -> None:
    """Scale the random output head. At the default init (std 0.02) every logit is within about +-1 of the others
    whatever the hidden state, so no LoRA on the layers can make one token clearly likeliest; scaled, it can."""
    from safetensors.numpy import load_file, save_file

    weights_file = model_dir / "model.safetensors"
    weights = load_file(str(weights_file))
    weights["lm_head.weight"] = weights["lm_head.weight"] * factor
    save_file(weights, str(weights_file), metadata={"format": "pt"})


@dataclass
class TrainedAdapter:
    model_dir: Path
    data_dir: Path
    workspace: Path
    run_id: str
    adapter_dir: Path
    version: int


_TRAINED: dict[str, TrainedAdapter] = {}
_LOCK = threading.Lock()


def trained_chat_adapter(tmp_path_factory) -> TrainedAdapter:
    """Train once per session (memoised, for every chat test module's session fixture) and deploy the run as v1.

    Deployed with force: the training issue's generation check (engine/training/evaluate.py generation_prompts)
    prompts completions data without the chat template mlx-lm trained it with, so its verdict on this adapter is
    not meaningful either way (test_adapter_answers_like_its_training_data_and_base_does_not shows the layout
    matters).
    """
    with _LOCK:
        if "adapter" in _TRAINED:
            return _TRAINED["adapter"]
        from engine.store import Workspace
        from engine.training.deploy import deploy
        from engine.training.launcher import plan_run, start_run
        from engine.training.runs import wait_for_run

        root = tmp_path_factory.mktemp("chat")
        model_dir = build_tiny_model(root / "tiny-model")
        sharpen_output_head(model_dir)
        data_dir = write_distinctive_data(root / "distinctive-data")
        ws = Workspace.open(root / "workspace")
        plan = plan_run(data_dir, str(model_dir), overrides=TRAIN_OVERRIDES, force=True)  # 60 samples: a test
        run_id = start_run(ws, plan)
        run = wait_for_run(ws, run_id, timeout=240)
        assert run.status == "completed", f"{run.error}\n{run.log_tail}"
        result = deploy(ws, run_id, description="chat tests", force=True)
        assert result.status == "active", result.message
        _TRAINED["adapter"] = TrainedAdapter(model_dir, data_dir, ws.root, run_id, ws.path("runs", run_id, "adapters"),
                                             result.version)
        return _TRAINED["adapter"]
