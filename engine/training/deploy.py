"""Adapter versions: deploy a trained run as v<N>, list, current, rollback, canary and promote, with checksums.

Layout in the workspace: versions/v<N>/adapters/ (the files as trained, never changed), versions/active/ (a copy
of the current version's files: what chat and compare serve) and versions/current.json (the pointer). Every
copy is verified against the sha256 manifest, so a rollback restores byte-identical files or refuses.

Before a candidate goes live it must pass the sanity and generation checks and must not evaluate worse than
what is served now (the current version, or the base model when there is none) on the candidate's held-out
split by more than `margin` (relative loss); otherwise it is stored and automatically rolled back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import zulu_now
from engine.errors import StudioError
from engine.files import building_folder, write_atomic
from engine.store import Workspace
from engine.training.evaluate import adapter_manifest, check_adapter_files, manifest_checksum
from engine.training.launcher import run_mlx_json
from engine.training.runs import get_run

DEFAULT_MARGIN = 0.05  # a candidate whose held-out loss is more than 5% above the served model's is rolled back
CANARY_MAX_ERROR_RATE = 0.15  # the orchestrator seed's error-rate trigger
CANARY_MIN_REQUESTS = 20


@dataclass
class VersionRecord:
    version: int
    run_id: str | None
    base_model: str
    model_path: str | None
    adapter_dir: str
    checksum: str
    files: list[dict]
    metrics: dict
    description: str | None
    status: str
    created_at: str
    deployed_at: str | None

    @property
    def name(self) -> str:
        return f"v{self.version}"


@dataclass
class DeployResult:
    """What deploy (or its dry run) decided: the version, the checks, the comparison and a one-line message."""

    version: int | None
    status: str  # would_deploy | active | canary | rolled_back
    message: str
    checks: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)
    dry_run: bool = False


@dataclass
class Served:
    """Which adapter answers one chat or compare request."""

    version: int | None
    role: str  # current | canary
    adapter_dir: Path | None


def parse_version(text: str | int) -> int:
    value = str(text).strip().lower().removeprefix("v")
    if not value.isdigit():
        raise StudioError(f"{text!r} is not a version; versions look like v3 or 3.")
    return int(value)


@contextlib.contextmanager
def _versions_lock(ws: Workspace) -> Iterator[None]:
    folder = ws.path("versions")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _record(row) -> VersionRecord:
    return VersionRecord(
        version=row["version"], run_id=row["run_id"], base_model=row["base_model"], model_path=row["model_path"],
        adapter_dir=row["adapter_dir"], checksum=row["checksum"], files=json.loads(row["files_json"]),
        metrics=json.loads(row["metrics_json"]), description=row["description"], status=row["status"],
        created_at=row["created_at"], deployed_at=row["deployed_at"],
    )


def list_versions(ws: Workspace) -> list[VersionRecord]:
    with ws.connection() as conn:
        return [_record(row) for row in conn.execute("SELECT * FROM adapter_versions ORDER BY version DESC")]


def get_version(ws: Workspace, version: int) -> VersionRecord:
    with ws.connection() as conn:
        row = conn.execute("SELECT * FROM adapter_versions WHERE version = ?", (version,)).fetchone()
    if row is None:
        raise StudioError(f"There is no version v{version}; `python -m engine deploy list` shows them.")
    return _record(row)


def deployment_state(ws: Workspace) -> dict:
    with ws.connection() as conn:
        row = conn.execute("SELECT * FROM deployment_state WHERE id = 1").fetchone()
        return dict(row)


def current_version(ws: Workspace) -> VersionRecord | None:
    """The version served now, or None when the base model alone is served."""
    state = deployment_state(ws)
    return get_version(ws, state["current_version"]) if state["current_version"] else None


def deploy(ws: Workspace, run_id: str, description: str | None = None, dry_run: bool = False, force: bool = False,
           margin: float | None = DEFAULT_MARGIN, canary_share: float | None = None) -> DeployResult:
    """Deploy a completed run's adapter as a new version (or as a canary taking `canary_share` of requests).

    Refuses (one sentence) when the run is not completed, its files fail the sanity check or changed since
    training, or its generation check failed (unless `force`). A candidate worse than the served model by more
    than `margin` is stored with status rolled_back and nothing served changes; `margin=None` skips that comparison.
    """
    if margin is not None and margin < 0:
        raise StudioError(f"The rollback margin must be 0 or more, not {margin}.")
    if canary_share is not None and not 0 < canary_share < 1:
        raise StudioError(f"The canary share must be between 0 and 1 (e.g. 0.1 for 10%), not {canary_share}.")
    run = get_run(ws, run_id)
    if run.status != "completed":
        raise StudioError(f"Run {run_id} is {run.status}; only a completed run can be deployed.")
    source = ws.path("runs", run_id, "adapters")
    checks = {"sanity": check_adapter_files(source)}
    if not checks["sanity"]["ok"]:
        raise StudioError(f"Run {run_id} cannot be deployed: {checks['sanity']['problems'][0]}")
    manifest = adapter_manifest(source)
    if run.adapter_files and manifest_checksum(manifest) != manifest_checksum(run.adapter_files):
        raise StudioError(f"The adapter files of run {run_id} changed since training; retrain or restore them.")
    generation = run.evaluation.get("generation")
    checks["generation"] = generation or {"ok": True, "problems": [], "skipped": True}
    blocker = None
    if generation and not generation["ok"] and not force:
        blocker = f"Run {run_id} failed its generation check ({generation['problems'][0].rstrip('.')})"
        if not dry_run:
            raise StudioError(f"{blocker}; deploy with force to override.")

    with _versions_lock(ws):
        state = deployment_state(ws)
        if canary_share is not None and state["canary_version"]:
            raise StudioError(f"A canary (v{state['canary_version']}) is already running; promote or abort it first.")
        comparison = compare_with_served(ws, run, margin)
        with ws.connection() as conn:
            number = (conn.execute("SELECT MAX(version) FROM adapter_versions").fetchone()[0] or 0) + 1
        if dry_run:
            if blocker:
                verdict = f"would be refused: {blocker}"
            else:
                verdict = "would be rolled back automatically" if comparison.get("worse") else "would be deployed"
            return DeployResult(number, "would_deploy", f"Dry run: v{number} from run {run_id} {verdict}; "
                                f"{comparison['summary']}", checks, comparison, dry_run=True)

        adapter_dir = _store_version_files(ws, number, source, manifest)
        if comparison.get("worse"):
            status, message = "rolled_back", (
                f"v{number} was rolled back automatically: {comparison['summary']} Nothing served changed.")
        elif canary_share is not None:
            status, message = "canary", f"v{number} serves {canary_share:.0%} of requests as a canary."
        else:
            status, message = "active", f"v{number} from run {run_id} is now the current version."
        metrics = {"evaluation": {key: run.evaluation.get(key) for key in ("base", "adapter", "passed")},
                   "final_train_loss": run.final_train_loss, "final_val_loss": run.final_val_loss,
                   "train_samples": run.train_samples, "comparison": comparison}
        with ws.transaction() as conn:
            conn.execute(
                "INSERT INTO adapter_versions(version, run_id, base_model, model_path, adapter_dir, checksum,"
                " files_json, metrics_json, description, status, created_at, deployed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (number, run_id, run.base_model, run.model_path, str(adapter_dir.relative_to(ws.root)),
                 manifest_checksum(manifest), json.dumps(manifest), json.dumps(metrics), description,
                 "canary" if status == "canary" else ("rolled_back" if status == "rolled_back" else "pending"),
                 zulu_now(), None),
            )
            if status == "rolled_back":
                _event(conn, "auto_rollback", number, state["current_version"], comparison["summary"])
            elif status == "canary":
                conn.execute("UPDATE deployment_state SET canary_version=?, canary_share=?, updated_at=? WHERE id=1",
                             (number, canary_share, zulu_now()))
                _event(conn, "canary", number, state["current_version"], f"share {canary_share}")
        if status == "active":
            _activate(ws, number, "deploy")
        return DeployResult(number, status, message, checks, comparison)


def _store_version_files(ws: Workspace, number: int, source: Path, manifest: list[dict]) -> Path:
    """Copy the adapter files into versions/v<N>/adapters and verify every byte against the manifest."""
    final = ws.path("versions", f"v{number}")
    if final.exists():
        shutil.rmtree(final)  # left by a deploy that died before recording it: the DB has no such version
    with building_folder(final) as staging:
        (staging / "adapters").mkdir()
        for item in manifest:
            shutil.copyfile(source / item["name"], staging / "adapters" / item["name"])
        if manifest_checksum(adapter_manifest(staging / "adapters")) != manifest_checksum(manifest):
            raise StudioError(f"Copying the adapter into v{number} did not reproduce the same bytes; disk problem?")
    return final / "adapters"


def _event(conn, action: str, version: int | None, previous: int | None, detail: str | None = None) -> None:
    conn.execute("INSERT INTO deployment_events(at, action, version, previous_version, detail) VALUES (?, ?, ?, ?, ?)",
                 (zulu_now(), action, version, previous, detail))


def _verified_files(ws: Workspace, record: VersionRecord) -> Path:
    folder = ws.root / record.adapter_dir
    if not folder.is_dir():
        raise StudioError(f"The files of {record.name} are missing from {folder}; it cannot be served.")
    if manifest_checksum(adapter_manifest(folder)) != record.checksum:
        raise StudioError(f"The files of {record.name} no longer match their checksum; it cannot be served.")
    return folder


def _activate(ws: Workspace, number: int | None, action: str) -> None:
    """Make `number` (None: the base model) what is served: swap versions/active, then the DB and current.json."""
    state = deployment_state(ws)
    previous = state["current_version"]
    active = ws.path("versions", "active")
    if number is not None:
        record = get_version(ws, number)
        folder = _verified_files(ws, record)
        with building_folder(active) as staging:
            for item in record.files:
                shutil.copyfile(folder / item["name"], staging / item["name"])
            if manifest_checksum(adapter_manifest(staging)) != record.checksum:
                raise StudioError(f"Restoring {record.name} did not reproduce its files byte for byte; nothing "
                                  "changed.")
    elif active.exists():
        shutil.rmtree(active)
    with ws.transaction() as conn:
        if previous is not None and previous != number:
            new_status = "rolled_back" if action == "rollback" else "retired"
            conn.execute("UPDATE adapter_versions SET status=? WHERE version=?", (new_status, previous))
        if number is not None:
            conn.execute("UPDATE adapter_versions SET status='active', deployed_at=? WHERE version=?",
                         (zulu_now(), number))
        conn.execute("UPDATE deployment_state SET current_version=?, updated_at=? WHERE id=1", (number, zulu_now()))
        if state["canary_version"] == number:
            conn.execute("UPDATE deployment_state SET canary_version=NULL, canary_share=0 WHERE id=1")
        _event(conn, action, number, previous)
    pointer = {"version": number, "adapter_dir": "versions/active" if number is not None else None,
               "checksum": get_version(ws, number).checksum if number is not None else None, "updated_at": zulu_now()}
    write_atomic(ws.path("versions", "current.json"), json.dumps(pointer, indent=2) + "\n")


def rollback(ws: Workspace, to_version: int | None = None) -> VersionRecord | None:
    """Serve the version that was current before this one (or `to_version`); return what is served now.

    Rolling back the first version serves the base model again (returns None).
    """
    with _versions_lock(ws):
        current = current_version(ws)
        if to_version is None:
            if current is None:
                raise StudioError("No version is deployed, so there is nothing to roll back.")
            target = _previous_of(ws, current.version)
        else:
            target = get_version(ws, to_version).version
            if current is not None and target == current.version:
                raise StudioError(f"v{target} is already the current version.")
            if get_version(ws, target).status == "canary":
                raise StudioError(f"v{target} is a running canary; promote it instead of rolling back to it.")
        _activate(ws, target, "rollback")
        return get_version(ws, target) if target is not None else None


def _previous_of(ws: Workspace, version: int) -> int | None:
    with ws.connection() as conn:
        row = conn.execute(
            "SELECT previous_version FROM deployment_events WHERE version=? AND action IN ('deploy', 'promote')"
            " ORDER BY id DESC LIMIT 1", (version,)).fetchone()
    return row["previous_version"] if row else None


def canary(ws: Workspace, run_id: str, share: float, description: str | None = None, force: bool = False,
           margin: float | None = DEFAULT_MARGIN) -> DeployResult:
    """Deploy a run as a canary that answers `share` of chat and compare requests until promoted or aborted."""
    return deploy(ws, run_id, description=description, force=force, margin=margin, canary_share=share)


def promote(ws: Workspace) -> VersionRecord:
    """Make the running canary the current version (its files become versions/active)."""
    with _versions_lock(ws):
        state = deployment_state(ws)
        if not state["canary_version"]:
            raise StudioError("No canary is running; start one with `deploy canary RUN_ID --traffic 10`.")
        _activate(ws, state["canary_version"], "promote")
        return get_version(ws, state["canary_version"])


def abort_canary(ws: Workspace, reason: str = "aborted by the user", automatic: bool = False) -> VersionRecord:
    """End the running canary: it is marked rolled_back and all requests go to the current version again."""
    with _versions_lock(ws):
        state = deployment_state(ws)
        if not state["canary_version"]:
            raise StudioError("No canary is running.")
        with ws.transaction() as conn:
            conn.execute("UPDATE adapter_versions SET status='rolled_back' WHERE version=?", (state["canary_version"],))
            conn.execute("UPDATE deployment_state SET canary_version=NULL, canary_share=0, updated_at=? WHERE id=1",
                         (zulu_now(),))
            _event(conn, "auto_rollback" if automatic else "rollback", state["current_version"],
                   state["canary_version"], reason)
        return get_version(ws, state["canary_version"])


def route_request(ws: Workspace, rng: random.Random | None = None) -> Served:
    """Pick the adapter for one chat or compare request: the canary with its share, else the current version."""
    state = deployment_state(ws)
    draw = (rng or random).random()
    if state["canary_version"] and draw < state["canary_share"]:
        record = get_version(ws, state["canary_version"])
        return Served(record.version, "canary", ws.root / record.adapter_dir)
    current = state["current_version"]
    return Served(current, "current", ws.path("versions", "active") if current else None)


def record_request(ws: Workspace, served: Served, ok: bool, latency_ms: float | None = None) -> str | None:
    """Count one served request; roll the canary back automatically when its error rate passes 15% over at least
    20 requests. Returns a message when that happened."""
    with ws.transaction() as conn:
        conn.execute("INSERT INTO canary_requests(at, version, role, ok, latency_ms) VALUES (?, ?, ?, ?, ?)",
                     (zulu_now(), served.version, served.role, int(ok), latency_ms))
    if served.role != "canary":
        return None
    with ws.connection() as conn:
        total, failed = conn.execute(
            "SELECT COUNT(*), SUM(1 - ok) FROM canary_requests WHERE role='canary' AND version=?",
            (served.version,)).fetchone()
    if total >= CANARY_MIN_REQUESTS and (failed or 0) / total > CANARY_MAX_ERROR_RATE:
        if deployment_state(ws)["canary_version"] == served.version:
            reason = f"error rate {failed / total:.0%} over {total} requests is above {CANARY_MAX_ERROR_RATE:.0%}"
            abort_canary(ws, reason, automatic=True)
            return f"Canary v{served.version} was rolled back automatically: {reason}."
    return None


def compare_with_served(ws: Workspace, run, margin: float | None) -> dict:
    """Held-out loss of the candidate against what is served now, on the candidate's own held-out split."""
    if margin is None:
        return {"worse": False, "summary": "the comparison with the served model was turned off."}
    adapter_losses = (run.evaluation.get("adapter") or {})
    split = "test" if "test" in adapter_losses else ("valid" if "valid" in adapter_losses else None)
    if split is None:
        return {"worse": False, "summary": "no held-out split was evaluated, so no comparison was made."}
    candidate = adapter_losses[split]["loss"]
    current = current_version(ws)
    if current is None:
        base_losses = (run.evaluation.get("base") or {}).get(split)
        if base_losses is None:  # DoRA adapters have no base evaluation (the adapter cannot be switched off)
            return {"worse": False, "split": split, "candidate_loss": candidate,
                    "summary": "the base model's held-out loss was not measured, so no comparison was made."}
        baseline, against = base_losses["loss"], "the base model"
    elif (current.model_path or current.base_model) != (run.model_path or run.base_model):
        return {"worse": False, "split": split, "candidate_loss": candidate,
                "summary": f"the current {current.name} uses another base model, so no comparison was made."}
    else:
        config = run.config
        args = ["evaluate", "--model", run.model_path, "--adapter", str(ws.root / current.adapter_dir),
                "--data", run.data_dir, "--batch-size", str(config["batch_size"]),
                "--max-seq-length", str(config["max_seq_length"]), "--num-batches", str(config["eval_batches"])]
        if config.get("mask_prompt"):
            args.append("--mask-prompt")
        result = run_mlx_json(args)
        if split not in result:
            return {"worse": False, "summary": f"the {split} split was too small to evaluate {current.name}."}
        baseline, against = result[split]["loss"], current.name
    worse = candidate > baseline * (1 + margin)
    relation = "worse by more than" if worse else "within"
    summary = (f"{split} loss {candidate:.3f} against {baseline:.3f} for {against} "
               f"is {relation} the {margin:.0%} margin.")
    return {"worse": worse, "split": split, "candidate_loss": candidate, "baseline_loss": baseline,
            "against": against, "margin": margin, "summary": summary}


def deployment_stats(ws: Workspace) -> dict:
    """Counts a person checks after deploying: versions by status, current and canary, events, canary traffic."""
    state = deployment_state(ws)
    with ws.connection() as conn:
        by_status = dict(conn.execute("SELECT status, COUNT(*) FROM adapter_versions GROUP BY status").fetchall())
        events = dict(conn.execute("SELECT action, COUNT(*) FROM deployment_events GROUP BY action").fetchall())
        traffic = {
            f"{row['role']}:{'base' if row['version'] is None else 'v' + str(row['version'])}": {
                "requests": row["total"], "errors": row["errors"], "mean_latency_ms": row["latency"]}
            for row in conn.execute(
                "SELECT role, version, COUNT(*) AS total, SUM(1 - ok) AS errors, AVG(latency_ms) AS latency"
                " FROM canary_requests GROUP BY role, version ORDER BY role, version")
        }
        last = conn.execute("SELECT at, action, version FROM deployment_events ORDER BY id DESC LIMIT 1").fetchone()
    return {
        "current_version": state["current_version"],
        "canary_version": state["canary_version"],
        "canary_share": state["canary_share"],
        "versions": sum(by_status.values()),
        "versions_by_status": by_status,
        "events": events,
        "rollback_available": state["current_version"] is not None,
        "traffic": traffic,
        "last_event": dict(last) if last else None,
    }
