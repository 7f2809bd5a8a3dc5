"""`python -m engine deploy {deploy,list,current,rollback,canary,promote,abort,stats}`: adapter versions."""

from __future__ import annotations

import argparse
import json

from engine.cli import CONFIG_HELP, WORKSPACE_HELP, workspace_of
from engine.processes import current_task
from engine.store import Workspace
from engine.training import deploy as versions

VERBS = ("deploy", "list", "current", "rollback", "canary", "promote", "abort", "stats")


HELP = "Deploy trained adapters as versions; list, current, rollback, canary, promote, stats."
DESCRIPTION = "Versions of deployed adapters, with checksums, canary releases and automatic rollback."


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--workspace", help=WORKSPACE_HELP)
    actions = parser.add_subparsers(dest="action", metavar="{" + ",".join(VERBS) + "}", required=True)

    def common(sub):
        sub.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        return sub

    def candidate(sub):
        sub.add_argument("run_id", help="a completed training run (python -m engine train --list)")
        sub.add_argument("--description", help="a note stored with the version")
        sub.add_argument("--force", action="store_true", help="deploy even if the generation check failed")
        sub.add_argument("--margin", type=float, default=versions.DEFAULT_MARGIN,
                         help="roll back automatically when held-out loss is worse than the served model's by more "
                              "than this share (default 0.05)")
        sub.add_argument("--no-compare", dest="margin", action="store_const", const=None,
                         help="skip the held-out comparison with the served model (no automatic rollback)")

    sub = common(actions.add_parser("deploy", help="deploy a run's adapter as the new current version"))
    candidate(sub)
    sub.add_argument("--dry-run", action="store_true", help="run every check and comparison, change nothing")
    common(actions.add_parser("list", help="list versions"))
    common(actions.add_parser("current", help="show the current version"))
    sub = common(actions.add_parser("rollback", help="serve the previous version again (or a named one)"))
    sub.add_argument("version", nargs="?", help="e.g. v2; default: the version current before this one")
    sub = common(actions.add_parser("canary", help="deploy a run as a canary serving a share of requests"))
    candidate(sub)
    sub.add_argument("--traffic", type=float, default=10.0, help="percent of requests the canary answers (default 10)")
    common(actions.add_parser("promote", help="make the running canary the current version"))
    common(actions.add_parser("abort", help="end the running canary; it is marked rolled back"))
    common(actions.add_parser("stats", help="versions, deployments, rollbacks and canary traffic"))


def run(args: argparse.Namespace) -> int:
    ws = Workspace.open(workspace_of(args))
    action = args.action
    if action in ("deploy", "canary"):
        share = args.traffic / 100 if action == "canary" else None
        task = current_task()  # the Training page runs deploys in the background: the comparison loads models
        if task:
            task("checking the adapter and comparing it with the served model on held-out data", 0, None)
        result = versions.deploy(ws, args.run_id, description=args.description, force=args.force,
                                 margin=args.margin, dry_run=getattr(args, "dry_run", False), canary_share=share)
        if task:
            task.finish({"action": action, "status": result.status, "message": result.message,
                         "dry_run": result.dry_run, "version": result.version})
        if args.json:
            print(json.dumps(result.__dict__, indent=2, default=str))
        else:
            print(result.message)
            if result.comparison.get("summary") and result.status != "rolled_back" and not result.dry_run:
                print(f"comparison: {result.comparison['summary']}")
        return 1 if result.status == "rolled_back" else 0
    if action == "list":
        records = versions.list_versions(ws)
        if args.json:
            print(json.dumps([record.__dict__ for record in records], indent=2))
        elif not records:
            print("No versions yet; deploy a completed run with `python -m engine deploy deploy RUN_ID`.")
        for record in [] if args.json else records:
            print(f"{record.name:<5} {record.status:<11} run {record.run_id}  sha256 {record.checksum[:12]}  "
                  f"{record.created_at[:19]}  {record.description or ''}".rstrip())
        return 0
    if action == "current":
        record = versions.current_version(ws)
        if args.json:
            print(json.dumps(record.__dict__ if record else None, indent=2))
        elif record is None:
            print("No version is deployed: the base model is served.")
        else:
            print(f"{record.name} from run {record.run_id}, sha256 {record.checksum}, deployed {record.deployed_at}")
        return 0
    if action == "rollback":
        target = versions.parse_version(args.version) if args.version else None
        record = versions.rollback(ws, target)
        print(f"Rolled back: {record.name} is served now (sha256 {record.checksum[:12]})." if record
              else "Rolled back: the base model alone is served now.")
        return 0
    if action == "promote":
        record = versions.promote(ws)
        print(f"Promoted {record.name}: it is the current version now.")
        return 0
    if action == "abort":
        record = versions.abort_canary(ws)
        print(f"Canary {record.name} ended and marked rolled back.")
        return 0
    stats = versions.deployment_stats(ws)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    current = f"v{stats['current_version']}" if stats["current_version"] else "base model"
    print(f"current: {current}; versions: {stats['versions']} {stats['versions_by_status']}")
    if stats["canary_version"]:
        print(f"canary: v{stats['canary_version']} at {stats['canary_share']:.0%} of requests")
    print(f"events: {stats['events']}")
    for key, value in stats["traffic"].items():
        print(f"traffic {key}: {value['requests']} requests, {value['errors']} errors")
    return 0
