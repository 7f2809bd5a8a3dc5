"""engine.cli.add_verb: the one way a verb module registers its parser, its help line and what it runs."""

from __future__ import annotations

import argparse
import importlib

from engine.__main__ import build_parser
from engine.cli import add_verb


def test_a_verb_is_listed_with_its_help_and_runs_its_function():
    parser = argparse.ArgumentParser(prog="engine")
    verbs = parser.add_subparsers(dest="verb")
    calls = []
    verb = add_verb(verbs, "count", lambda args: calls.append(args.n) or 0, help="count to n",
                    description="""Counts. The description is prose
                    on several lines, reflowed by argparse.""")
    verb.add_argument("--n", type=int, default=3)
    args = parser.parse_args(["count", "--n", "7"])
    assert args.func(args) == 0 and calls == [7]
    assert "count to n" in parser.format_help()
    assert "Counts. The description is prose on several lines, reflowed by argparse." in verb.format_help()


def test_the_verbs_built_with_it_run_their_own_module():
    parser = build_parser()
    for argv in (["api"], ["collect"], ["probe", "--adapter", "x"], ["scheduler", "status"], ["stats", "summary"]):
        args = parser.parse_args(argv)
        assert args.func is importlib.import_module(f"engine.cli.{argv[0]}").run
