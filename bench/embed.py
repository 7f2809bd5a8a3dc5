"""`python -m bench embed [--workspace WS] [--texts 400] [--rounds 2]`: the embedding runtimes side by side.

The same texts (knowledge items and commit message heads of a linked workspace, e.g. a linking-dev variant's `ws`)
are embedded by each runtime in turn, alternating over rounds so load on the machine hits them alike:
sentence-transformers on torch (the reference), the numpy encoder, ONNX Runtime float32 and ONNX Runtime int8, all
from the same packaged all-MiniLM-L6-v2 weights. Reports seconds, texts/s, the ratio to torch, and how close each
runtime's vectors are to torch's (cosine). The decision-level check (same links on labelled sets) is in
`python -m bench link_model evaluate --runtime ...`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench embed")
    parser.add_argument("--workspace", required=True, help="a workspace with knowledge and commits (after extract)")
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    import numpy as np

    from engine.linking.embedder import _resolve_model_location, chunk_texts
    from engine.linking.numpy_bert import NumpyBert
    from engine.linking.onnx_bert import OnnxBert

    location = _resolve_model_location("all-MiniLM-L6-v2")
    conn = sqlite3.connect(f"file:{args.workspace}/studio.db?mode=ro", uri=True)
    knowledge = [row[0] for row in conn.execute("SELECT text FROM knowledge ORDER BY id LIMIT ?", (args.texts // 2,))]
    messages = [row[0] for row in conn.execute("SELECT message FROM commits ORDER BY timestamp DESC LIMIT ?",
                                               (args.texts - len(knowledge),))]
    numpy_model = NumpyBert(location)
    pieces = [chunks[0] for chunks in chunk_texts(knowledge + messages, numpy_model.offsets,
                                                  numpy_model.max_seq_length - 2)]
    tokens = sum(len(ids) for ids in numpy_model._ids(pieces))
    began = time.perf_counter()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    reference = SentenceTransformer(location, device="cpu")
    torch_load = time.perf_counter() - began
    began = time.perf_counter()
    onnx_int8 = OnnxBert(location)
    int8_load = time.perf_counter() - began
    onnx_float = OnnxBert(location, quantized=False)
    runtimes = {
        "sentence-transformers (torch), reference": lambda texts: reference.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        "numpy encoder": numpy_model.encode,
        "ONNX Runtime float32": onnx_float.encode,
        "ONNX Runtime int8 (per-channel MatMul weights)": onnx_int8.encode,
    }
    for encode in runtimes.values():
        encode(pieces[:4])  # warm up
    seconds: dict[str, list[float]] = {name: [] for name in runtimes}
    vectors = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, encode in runtimes.items():
            started = time.perf_counter()
            vectors[name] = np.asarray(encode(pieces), dtype=np.float32)
            seconds[name].append(time.perf_counter() - started)
        load.append(os.getloadavg()[0])
    base_name = next(iter(runtimes))
    base = statistics.median(seconds[base_name])
    print(f"### Embedding runtimes (`python -m bench embed`, {time.strftime('%Y-%m-%d %H:%M')})\n")
    print(f"{len(pieces)} texts ({len(knowledge)} knowledge items, {len(messages)} commit messages; first window "
          f"each, {tokens:,} tokens), {args.rounds} alternating rounds, median; {os.cpu_count()} cores, load "
          f"average {min(load):.1f}-{max(load):.1f}. Loading: torch + sentence-transformers {torch_load:.1f} s, "
          f"ONNX int8 {int8_load:.1f} s (graph built once per machine, then read from the cache).\n")
    print("| runtime | seconds | texts/s | time vs torch | cosine to torch: mean | min |")
    print("|---|---|---|---|---|---|")
    for name in runtimes:
        median = statistics.median(seconds[name])
        cosine = (vectors[name] * vectors[base_name]).sum(axis=1)
        print(f"| {name} | {median:.2f} | {len(pieces) / median:.0f} | {median / base:.2f}x | {cosine.mean():.4f} | "
              f"{cosine.min():.4f} |")
    return 0
