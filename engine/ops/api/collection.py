"""GET /api/training/stats, /api/training/daily and /api/training/sources: the collected examples, as
engine.ops.stats counts them for `python -m engine stats` and the Pipeline page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from engine.ops import stats
from engine.ops.api.answers import ok
from engine.ops.api.deps import WorkspaceDep

router = APIRouter()


@router.get("/training/stats", summary="Examples by source, format and tier; tokens; storage")
def training_stats(ws: WorkspaceDep) -> JSONResponse:
    return ok(stats.summary(ws.root))


@router.get("/training/daily", summary="Examples collected per day, oldest first")
def training_daily(ws: WorkspaceDep,
                   days: Annotated[int, Query(ge=1, le=3650, description="how many days back")] = 30,
                   ) -> JSONResponse:
    return ok(stats.daily(ws.root, days=days), days=days)


@router.get("/training/sources", summary="Health of each example source")
def training_sources(ws: WorkspaceDep) -> JSONResponse:
    return ok(stats.sources(ws.root))
