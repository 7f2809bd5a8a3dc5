"""`python -m engine validate --input JSONL [--report TXT] [--json JSON] [--findings JSON]`

Prints the validation report; exits 3 while pairs with sensitive data have no reviewer decision (keep, redact or
drop), so a script can stop before export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli import CONFIG_HELP, WORKSPACE_HELP, number_in
from engine.config import DEFAULT_MIN_CONFIDENCE
from engine.dataset.validate import validate_dataset
from engine.executor import add_executor_arguments, executor_choice, open_executor
from engine.files import output_target, write_atomic
from engine.progress import TqdmProgress
from engine.store import Workspace, resolve_workspace

EXIT_UNRESOLVED = 3


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="training data JSONL (default: the config's paths.output_file)")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--workspace", help=WORKSPACE_HELP)


def resolve_input(args: argparse.Namespace) -> tuple[Path, Workspace]:
    """The JSONL and workspace a dataset verb works on: flags first, then the (active) config. Fills in
    `args.min_confidence` from the config's confidence.min_confidence when the flag was not given."""
    from engine.errors import StudioError
    from engine.settings import active_config_path, load_active_config

    config = None
    if args.config or active_config_path().exists():
        try:
            config = load_active_config(args.config)
        except StudioError:
            if args.config or not args.input:
                raise  # the config was named, or the only way to find the data: say what is wrong with it
    if args.input:
        source = Path(args.input).expanduser()
    elif config is not None:
        source = config.output_file
    else:
        raise StudioError("Name the training data with --input (no pipeline config was found to take it from).")
    if getattr(args, "min_confidence", DEFAULT_MIN_CONFIDENCE) is None:
        args.min_confidence = config.min_confidence if config is not None else DEFAULT_MIN_CONFIDENCE
    configured = str(config.workspace) if config is not None and config.workspace else None
    args.loaded_config = config  # the config's executor section, for the verbs that take --executor
    return source, Workspace.open(resolve_workspace(args.workspace, configured))


HELP = "check a training_data.jsonl: format, confidence, duplicates, sensitive data, quality"
DESCRIPTION = "Validate training pairs and write the report. Exit status 3 while sensitive data awaits review."


def arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--report", help="also write the text report to this file")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON to this file")
    parser.add_argument("--findings", help="write the sensitive-data findings (offsets, never values) to this file")
    parser.add_argument("--min-confidence", type=number_in(0, 1), help="link confidence below which a pair is "
                        "demoted (default: the config's confidence.min_confidence, else 0.6)")
    parser.add_argument("--sample", type=number_in(0, 100_000, whole=True), default=10,
                        help="unflagged pairs to queue for review (default 10)")
    parser.add_argument("--tokenizer", help="model id or folder whose tokenizer counts tokens (default: tiktoken)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    outputs = [Path(path).expanduser() for path in (args.report, args.json_path, args.findings) if path]
    for path in outputs:  # before any work: a device or folder there is refused, not replaced at the end
        output_target(path)
    source, workspace = resolve_input(args)
    progress = TqdmProgress()
    try:
        with open_executor(*executor_choice(args.loaded_config, args.executor, args.ray_address)) as executor:
            report, _ = validate_dataset(source, workspace, min_confidence=args.min_confidence,
                                         sample_size=args.sample, tokenizer_model=args.tokenizer, progress=progress,
                                         executor=executor)
    finally:
        progress.close()
    text = report.render_text()
    print(text)
    if args.report:
        write_atomic(Path(args.report).expanduser(), text)
    if args.json_path:
        write_atomic(Path(args.json_path).expanduser(), json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    if args.findings:
        write_atomic(Path(args.findings).expanduser(), json.dumps(report.findings, indent=2) + "\n")
    return EXIT_UNRESOLVED if report.unresolved_pairs else 0
