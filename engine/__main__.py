"""`python -m engine <verb>`: the command line over the same functions the pages call.

Every module in engine/cli/ that defines `arguments(parser)` adds one verb named after the module: its `HELP` is
the verb's line in `-h`, its `DESCRIPTION` heads `<verb> -h`, `arguments` adds the verb's flags and `run(args)`
does the work. This file only builds that parser, dispatches, and turns domain errors into one plain sentence
with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sqlite3
import sys

from engine import __version__
from engine.errors import StudioError
from engine.store import BUSY_TIMEOUT_SECONDS, is_busy


def build_parser() -> argparse.ArgumentParser:
    import engine.cli as cli_package
    from engine.cli import add_verb

    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Training Data Studio: screen captures, git history and docs in, fine-tuning data and models out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="<verb>", title="verbs")
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda module: module.name):
        module = importlib.import_module(f"engine.cli.{info.name}")
        if hasattr(module, "arguments"):
            verb = add_verb(subparsers, info.name, getattr(module, "run", None), help=module.HELP,
                            description=module.DESCRIPTION)
            module.arguments(verb)
    return parser


def main(argv: list[str] | None = None) -> int:
    from engine.processes import current_task

    task = current_task()  # set when a page started this verb as a background task
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or arguments argparse refused (it printed why)
        if task:
            task.finish(None) if not exc.code else task.fail("Its arguments were refused; its log says why.")
        raise
    if not getattr(args, "func", None):
        parser.print_help()
        if task:
            task.fail("No verb was given.")
        return 2
    try:
        code = int(args.func(args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if task:
            task.fail(str(exc))
        return 1
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise
        # a write outside a transaction (autocommit) that waited out the busy timeout
        print(f"error: a database is busy: another process has held its write lock for more than "
              f"{BUSY_TIMEOUT_SECONDS:g} s; try again when it finishes.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if task:
            task.fail("Interrupted before it finished; start it again.")
        return 130
    except BrokenPipeError:  # `python -m engine stats json | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except BaseException as exc:
        if task:  # the type only: an exception's text may quote the data it choked on
            task.fail(f"It stopped on an unexpected {type(exc).__name__}; its log has the details.")
        raise
    if task and task.status.running:
        if code:
            task.fail(f"It exited with status {code}; its log has the details.")
        else:
            task.finish(None)
    return code


if __name__ == "__main__":
    sys.exit(main())
