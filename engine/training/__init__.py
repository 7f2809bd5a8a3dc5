"""Training: base models, the out-of-process mlx-lm LoRA launcher, run records, evaluation and adapter versions.

Nothing here imports mlx at module level: mlx runs in the worker process (`engine.training._worker`), started by
`launcher.start_run` with OpenBLAS preloaded on Linux, so the CLI and the pages stay light and a crash or a kill
of the training process can never take the app down with it.
"""
