"""The one place the engine reads the clock and shapes timestamps.

The workspace stores ISO 8601 strings in UTC so they sort and compare as text: `iso_utc` (microseconds) for rows
written in bursts, `now_iso(timespec="seconds")` for run logs people read. Training runs and deployments keep
mlx-lm's `Z` shape (`zulu_now`), because their manifests are read by other tools and tests pin that shape.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    """The current moment, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """The one timestamp shape the workspace stores (a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def now_iso(timespec: str = "microseconds") -> str:
    """Now as `2026-03-01T10:00:00.123456+00:00` (or cut to `timespec`, e.g. "seconds")."""
    return utc_now().isoformat(timespec=timespec)


def zulu_now(fraction: bool = True) -> str:
    """Now as `2026-03-01T10:00:00.123456Z` (or without the fraction): the shape run and deploy manifests use."""
    return utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ")
