"""Chat with base and fine-tuned models: loading (models), prompt layout (layout), streaming generation
(generate) and probing held-out pairs (probe). mlx is imported only when a model is loaded or generates."""
