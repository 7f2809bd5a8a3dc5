"""Store knowledge records in the workspace: one item per distinct normalized text, every source id kept."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable

from engine.records import Knowledge
from engine.sources.report import SourceReport

_IN_CHUNK = 500


def normalize_text(text: str) -> str:
    """The text duplicates are judged on: whitespace runs collapsed, ends stripped."""
    return " ".join(text.split())


def content_hash(text: str) -> str:
    """sha1 of the normalized text: the key of knowledge items and, later, of the embedding cache."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()


def _select_in(conn: sqlite3.Connection, sql: str, values: list, prefix: tuple = ()) -> list[tuple]:
    rows = []
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start:start + _IN_CHUNK]
        rows += conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*prefix, *chunk)).fetchall()
    return rows


def store_knowledge(conn: sqlite3.Connection, records: Iterable[Knowledge], report: SourceReport) -> None:
    """Insert a batch inside the caller's transaction. A source id already stored is not counted again; a
    document whose content changed is re-pointed to its new text and the old text dropped if nothing uses it."""
    records = list(records)
    if not records:
        return
    known_sources = dict(_select_in(
        conn, "SELECT source_id, knowledge_id FROM knowledge_sources WHERE source_id IN ({marks})",
        [record.source_id for record in records],
    ))
    by_key: dict[tuple[str, str], int] = {}
    hashes: dict[str, list[str]] = {}
    prepared = []
    for record in records:
        digest = content_hash(record.text)
        prepared.append((record, digest))
        hashes.setdefault(record.knowledge_type, []).append(digest)
    for knowledge_type, digests in hashes.items():
        for digest, knowledge_id in _select_in(
            conn, "SELECT content_hash, id FROM knowledge WHERE knowledge_type = ? AND content_hash IN ({marks})",
            sorted(set(digests)), (knowledge_type,),
        ):
            by_key[(knowledge_type, digest)] = knowledge_id

    new_sources, touched, repointed_from = [], set(), set()
    for record, digest in prepared:
        key = (record.knowledge_type, digest)
        knowledge_id = by_key.get(key)
        if knowledge_id is None:
            knowledge_id = conn.execute(
                "INSERT INTO knowledge(knowledge_type, content_hash, text, timestamp, last_timestamp, app_name,"
                " window_name, browser_url, source_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (record.knowledge_type, digest, record.text, record.timestamp, record.timestamp, record.app_name,
                 record.window_name, record.browser_url),
            ).lastrowid
            by_key[key] = knowledge_id
            report.new_items += 1
        else:
            report.duplicates += record.source_id not in known_sources
        previous = known_sources.get(record.source_id)
        if previous == knowledge_id:
            continue
        if previous is not None:
            repointed_from.add(previous)
            conn.execute("DELETE FROM knowledge_sources WHERE source_id = ?", (record.source_id,))
        known_sources[record.source_id] = knowledge_id
        new_sources.append((record.source_id, knowledge_id, record.timestamp, record.app_name, record.window_name,
                            record.speaker_id))
        touched.add(knowledge_id)
    conn.executemany(
        "INSERT INTO knowledge_sources(source_id, knowledge_id, timestamp, app_name, window_name, speaker_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        new_sources,
    )
    ids = sorted(touched | repointed_from)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(
            "UPDATE knowledge SET"
            " source_count = (SELECT COUNT(*) FROM knowledge_sources s WHERE s.knowledge_id = knowledge.id),"
            " timestamp = (SELECT MIN(s.timestamp) FROM knowledge_sources s WHERE s.knowledge_id = knowledge.id),"
            " last_timestamp = (SELECT MAX(s.timestamp) FROM knowledge_sources s WHERE s.knowledge_id = knowledge.id)"
            f" WHERE id IN ({marks})",
            chunk,
        )
    if repointed_from:
        marks = ",".join("?" * len(repointed_from))
        conn.execute(f"DELETE FROM knowledge WHERE id IN ({marks}) AND source_count = 0", sorted(repointed_from))


def knowledge_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per knowledge type: distinct items and the source rows behind them."""
    return {
        row[0]: {"items": row[1], "sources": row[2]}
        for row in conn.execute(
            "SELECT knowledge_type, COUNT(*), COALESCE(SUM(source_count), 0) FROM knowledge GROUP BY knowledge_type"
        )
    }
