"""`python -m bench scale [--members 4] [--screens 500] [--commits 30] [--rounds 1] [--write]`: the same work on the
local executor and on Ray with 1 and 2 workers, side by side in one run.

Builds (once, cached in bench/out/scale-world-*) a team world: each member has a real screenpipe database (current
schema; every screen captured a few times in a row, some with a ticking clock, transcripts in between, a few
planted tokens and e-mail addresses) and a real git repository whose commits follow the screens. Then, per
configuration and round, in fresh workspaces, as a user runs them:
`python -m engine link --json --executor ...` (extract + link) and `python -m engine validate --executor ...`.
Configurations: local (the default: this process, ONNX with every core for embedding); ray with 1 worker (a head
node with 1 CPU); ray with 2 workers (a head node and a worker node, 1 CPU each), both clusters started by this
bench and joined with --ray-address, so the figures include what a real run pays (connecting, shipping the engine
package, starting workers, loading the model in each) but not starting the cluster. The outputs of every
configuration must be byte-identical (pairs, MLX folder, findings, report); the bench exits 1 otherwise.
Prints a Markdown section; --write puts it into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_DISABLE_IMPORT_WARNING": "1"}
START = datetime(2026, 9, 7, 8, 0, tzinfo=timezone.utc)
OBJECT_STORE_BYTES = 200 * 1024 * 1024

_TOPICS = ["forecast", "cache", "retry", "backoff", "tokenizer", "billing", "invoice", "search", "index", "upload",
           "thumbnail", "session", "login", "webhook", "export", "import", "schema", "migration", "queue", "worker",
           "scheduler", "report", "metrics", "alert", "timeout", "pagination", "filter", "ranking", "embedding",
           "checkout", "coupon", "refund", "locale", "timezone", "currency", "profile", "avatar", "settings"]
_WORDS = ("the a when we should fix add handle return raise check update remove fails passes after before during "
          "request response client server api endpoint config value default error exception status code test case "
          "user account page button field column table row query result batch job task retry limit window").split()
_APPS = [("Google Chrome", "https://github.com/acme/{topic}/issues/{n}"), ("Code", None), ("iTerm2", None),
         ("Slack", None), ("Linear", "https://linear.app/acme/issue/ACME-{n}")]


def _sentence(rng: random.Random, topic: str, length: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(length)]
    for position in rng.sample(range(length), k=min(length, 4)):
        words[position] = rng.choice([topic, f"{topic}_{rng.randrange(50)}", f"{topic}.py", f"#{rng.randrange(900)}"])
    return " ".join(words)


def build_world(root: Path, members: int, screens: int, commits: int) -> None:
    """`members` members, each with `screens` distinct screens (2-6 captures each) and `commits` commits."""
    from engine.demo.screenpipe_builder import ScreenpipeWriter

    rng = random.Random(100)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    team = []
    for number in range(members):
        name = f"member{number:02d}"
        folder = staging / name
        folder.mkdir()
        moment = START + timedelta(minutes=7 * number)
        topics = rng.sample(_TOPICS, k=6)
        plan = []  # (commit time, topic) after each block of screens
        with ScreenpipeWriter(folder / "db.sqlite", era="current") as writer:
            for screen in range(screens):
                topic = topics[screen % len(topics)]
                app, url = rng.choice(_APPS)
                issue = rng.randrange(1, 900)
                text = _sentence(rng, topic, rng.randrange(25, 70))
                if screen % 97 == 5:
                    token = "ghp_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789")
                                             for _ in range(36))
                    text += f" deploy token {token} rotate it; ask {name}@example.com"
                ticking = rng.random() < 0.3
                for _ in range(rng.randrange(2, 7)):
                    moment += timedelta(seconds=rng.randrange(2, 9))
                    shown = f"{text} {moment:%H:%M}" if ticking else text
                    writer.add_frame(moment, shown, app, f"{topic} {issue} - {app}",
                                     url.format(topic=topic, n=issue) if url else None)
                if screen % 8 == 3:
                    writer.add_audio(moment, f"so for the {topic} we {_sentence(rng, topic, rng.randrange(12, 30))}")
                if screen % max(1, screens // commits) == 0 and len(plan) < commits:
                    plan.append((moment + timedelta(minutes=rng.randrange(5, 90)), topic))
                moment += timedelta(minutes=rng.randrange(1, 25))
        repo = folder / "repo"
        repo.mkdir()
        env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{name}@example.com", "GIT_COMMITTER_NAME": name,
               "GIT_COMMITTER_EMAIL": f"{name}@example.com"}
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, env=env, check=True)
        for index, (when, topic) in enumerate(plan):
            path = repo / f"{topic}" / f"{topic}_{index}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text("\n".join(f"def {topic}_{index}_{line}(value):\n    return value + {line}"
                                      for line in range(8)) + "\n", encoding="utf-8")
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
            subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
            subprocess.run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m",
                            f"Fix the {topic} {_sentence(rng, topic, 6)}"], cwd=repo, check=True,
                           env={**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        team.append({"name": name, "screenpipe_db": f"{name}/db.sqlite", "git_repo": f"{name}/repo"})
    # every commit with knowledge in its window gets its best three links as pairs: validation has work to do
    config = {"document_sources": {"directories": []}, "filtering": {"max_commits": 100_000},
              "confidence": {"min_confidence": 0.0}, "team": {"members": team}}
    (staging / "team.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)


def _cluster(workers: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES,
                                                            "include_dashboard": False})
    for _ in range(workers - 1):
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
    cluster.wait_for_nodes()
    return cluster


def _run(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode not in (0, 3):  # validate exits 3 while planted tokens await review
        raise SystemExit(f"`python -m engine {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began, done


def _one_run(world: Path, scratch: Path, label: str, executor: list[str]) -> dict:
    """extract + link, then validate, in fresh workspaces; returns timings and the output bytes."""
    config = json.loads((world / "team.json").read_text(encoding="utf-8"))
    config["paths"] = {"output_file": str(scratch / label / "training_data.jsonl")}
    config_path = world / f"team-{label}.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    shutil.rmtree(scratch / label, ignore_errors=True)
    link_wall, linked = _run(["link", "--config", str(config_path), "--workspace", str(scratch / label / "ws"),
                              "--json", *executor])
    report = json.loads(linked.stdout)
    findings = scratch / label / "findings.json"
    validate_wall, _ = _run(["validate", "--input", str(scratch / label / "training_data.jsonl"), "--workspace",
                             str(scratch / label / "validate-ws"), "--findings", str(findings), "--json",
                             str(scratch / label / "report.json"), *executor])
    link = report["link"]
    outputs = {name: (scratch / label / name).read_bytes() for name in
               ("training_data.jsonl", "data/train.jsonl", "data/valid.jsonl", "findings.json")}
    report_json = json.loads((scratch / label / "report.json").read_text(encoding="utf-8"))
    report_json.pop("dataset")
    outputs["report"] = json.dumps(report_json, sort_keys=True).encode()
    return {"link_wall": link_wall, "validate_wall": validate_wall, "extract": report["extract"]["seconds"],
            **{f"{stage}_s": link["seconds"].get(stage, 0.0) for stage in ("group", "embed", "score", "pairs")},
            "embedded": link["embedded_texts"], "items": link["knowledge_items"], "sources": link["knowledge_sources"],
            "representatives": link["representatives"], "pairs": link["pairs"], "commits": link["commits"],
            "findings": len(json.loads(outputs["findings.json"])), "workers": report["executor"]["workers"],
            "outputs": outputs}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--screens", type=int, default=500, help="distinct screens per member")
    parser.add_argument("--commits", type=int, default=30, help="commits per member")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write the section into bench/RESULTS.md")
    args = parser.parse_args(argv)
    world = OUT / f"scale-world-{args.members}-{args.screens}-{args.commits}"
    if not (world / "team.json").exists():
        began = time.perf_counter()
        build_world(world, args.members, args.screens, args.commits)
        print(f"built {world} in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    scratch = OUT / "scale-runs"
    labels = ["local", "ray, 1 worker", "ray, 2 workers"]
    runs: dict[str, list[dict]] = {label: [] for label in labels}
    for round_number in range(args.rounds):
        for label in labels:  # alternating, so load on the machine hits every configuration alike
            key = label.replace(", ", "-").replace(" ", "")
            if label == "local":
                runs[label].append(_one_run(world, scratch, key, ["--executor", "local"]))
            else:
                cluster = _cluster(int(label.split(", ")[1][0]))
                try:
                    runs[label].append(_one_run(world, scratch, key, ["--executor", "ray", "--ray-address",
                                                                      cluster.address]))
                finally:
                    cluster.shutdown()
            print(f"round {round_number + 1}: {label} done", file=sys.stderr)
    reference = runs["local"][0]["outputs"]
    identical = all(run["outputs"] == reference for label in labels for run in runs[label])
    text = _section(args, runs, labels, identical)
    print(text)
    if args.write:
        from bench._results import write_section

        print(f"written to {write_section(text)}", file=sys.stderr)
    return 0 if identical else 1


def _section(args, runs: dict[str, list[dict]], labels: list[str], identical: bool) -> str:
    def median(label: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[label])

    first = runs["local"][0]
    base = median("local", "link_wall") + median("local", "validate_wall")
    lines = [
        "## Scale: the same work on the local executor and on Ray (`python -m bench scale`)",
        "",
        f"A team world of {args.members} members (`--members {args.members} --screens {args.screens} --commits "
        f"{args.commits}`): {first['sources']:,} screenpipe rows and documents read, {first['items']:,} distinct "
        f"texts, {first['representatives']:,} after near-duplicate collapse, {first['commits']:,} commits; "
        f"{first['embedded']:,} texts embedded (cold), {first['pairs']:,} pairs, {first['findings']:,} findings. "
        f"Per configuration: `link` (extract + link) and `validate` as subprocesses in fresh workspaces, "
        f"median of {args.rounds} round(s), configurations alternating. Outputs (pairs, MLX folder, findings, "
        f"report) byte-identical across all: **{'yes' if identical else 'NO'}**.",
        "",
        "| configuration | extract | group | embed | score | pairs | link wall | validate wall | total "
        "| ratio to local |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        total = median(label, "link_wall") + median(label, "validate_wall")
        lines.append(
            f"| {label} | {median(label, 'extract'):.1f} s | {median(label, 'group_s'):.1f} s | "
            f"{median(label, 'embed_s'):.1f} s | {median(label, 'score_s'):.1f} s | {median(label, 'pairs_s'):.1f} s | "
            f"{median(label, 'link_wall'):.1f} s | {median(label, 'validate_wall'):.1f} s | {total:.1f} s | "
            f"{total / base:.2f}x |")
    embed = {label: median(label, "embed_s") for label in labels}
    lines += ["", "Embedding throughput (texts embedded / embed seconds): " + "; ".join(
        f"{label} {first['embedded'] / max(embed[label], 1e-9):.0f} texts/s" for label in labels) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
