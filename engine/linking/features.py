"""What real evidence offers for one (commit, knowledge item) candidate, as named numbers the link model weighs.

Candidates come from time first (`window_candidates`): a screen or transcript can only explain a commit if it was
seen in the days before it (`linking.time_window_days`), and every sighting counts, not only the first one (a page
re-read the day before the commit is recent even if it was first opened a month ago). Timeless knowledge
(documents, rows without a time) competes on meaning alone: its best few per commit by cosine join the candidates.

For each candidate, `pair_features` computes (names in FEATURES):
- meaning: cosines of the commit's subject and message (first window) against the item's best chunk, and of the
  subject against the page title of a browser tab (a cosine of the diff's paths and identifiers was measured too:
  it lowered recall on held-out histories and cost a quarter of the embedding time, so the diff speaks through the
  exact references below instead);
- words: BM25 of the commit text against the item, the share of the commit's (and its subject's) rare words found
  in the item and in the page title (IDF-weighted, so "the" counts for nothing and `hug_parens` for much);
- explicit references: the commit's issue numbers, changed file names and identifiers seen in the item;
- time: hours since the item was last seen before the commit, how often it was seen in the window;
- the item itself: its mean similarity to all commits (hubness), whether it is audio, a document, a browser page,
  an issue tracker's page.
`relative_features` adds how a candidate compares with the others of the same commit and of the same item (a page
explains the one commit it is closest to, not every commit of that week).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from engine.linking.keywords import commit_references, identifiers_in_code, reference_tokens

FEATURES = (
    "cos_subject", "cos_message", "cos_title", "has_title",
    "bm25", "word_overlap", "subject_overlap", "title_overlap",
    "issue_ref", "file_ref", "identifier_ref",
    "log_hours", "within_hour", "log_sightings", "timeless",
    "hubness", "is_audio", "is_document", "is_browser", "is_tracker",
)
RELATIVE_FEATURES = ("margin_commit", "margin_item", "best_for_commit", "best_for_item")
HOUR = 3600.0
DAY = 24 * HOUR
TIMELESS_PER_COMMIT = 10  # timeless items (documents) a commit considers, best by cosine
TIMELESS_HOURS = 48.0
MARGIN_CAP = 10.0

_STOP = frozenset(
    "the a an and or of to in on for with is are was were be been it this that as at by from not no but if then "
    "else when what which who how can could should would will may might do does did has have had you he she we they "
    "them his her our your their its there here also just than too very so such more most some any all each other "
    "into out up down over under again once only own same both few about above below between through during before "
    "after off while because until these those being get got make made use used using new one two three via per etc"
    .split())
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_CAMEL_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_BROWSER_SUFFIX = re.compile(
    r"\s+[—–-]\s+(?:Mozilla Firefox|Firefox|Google Chrome|Chromium|Safari|Microsoft Edge|Brave|Arc|Opera|Vivaldi)\s*$",
    re.IGNORECASE)
# " · Issue #12 · owner/repo", " | Pull Request #3", " - Discussion #9", "#12" at the end, " · owner/repo"
_TRACKER_SUFFIX = re.compile(r"\s*(?:[·|•]|\s-)\s*(?:Issue|Pull Request|Merge Request|Discussion|PR)\b.*$", re.I)
_TRAILING_NUMBER = re.compile(r"\s*#\d+\s*$")
# an issue tracker's page for one issue, pull / merge request or ticket: GitHub, GitLab, Gitea, Bitbucket, Jira,
# Linear, YouTrack, Redmine, Trac, Bugzilla ...
_TRACKER_URL = re.compile(
    r"/(?:issues?|pulls?|merge_requests|pull-requests|tickets?|bugs?)/\d+|/browse/[A-Z][A-Z0-9]+-\d+"
    r"|/issue/[A-Z][A-Z0-9]*-\d+|show_bug\.cgi\?id=\d+", re.IGNORECASE)
_TRACKER_TITLE = re.compile(r"\b(?:Issue|Pull Request|Merge Request|PR|Bug|Ticket)\s*[#!]\d+|\b[A-Z][A-Z0-9]+-\d+\b")


def is_tracker_page(window_name: str | None, browser_url: str | None) -> bool:
    """A browser tab showing one issue, pull request or ticket (by its URL, or its title when there is no URL)."""
    if browser_url:
        return bool(_TRACKER_URL.search(browser_url))
    return bool(window_name and _TRACKER_TITLE.search(window_name))


def words(text: str) -> list[str]:
    """Lower-case content words of a text, with the parts of snake_case and camelCase identifiers as well."""
    found = []
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower in _STOP:
            continue
        found.append(lower)
        if "_" in word.strip("_") or re.search(r"[a-z][A-Z]", word):
            for piece in word.split("_"):
                for part in _CAMEL_PART.findall(piece):
                    part = part.lower()
                    if len(part) >= 3 and part not in _STOP and part != lower:
                        found.append(part)
    return found


def page_title(window_name: str | None, browser_url: str | None) -> str:
    """The page's own title from a browser window title ("Fix X · Issue #12 · o/r — Mozilla Firefox" -> "Fix X");
    empty for anything that is not a browser tab with a URL."""
    if not browser_url or not window_name:
        return ""
    title = _BROWSER_SUFFIX.sub("", window_name.strip())
    title = _TRACKER_SUFFIX.sub("", title)
    return _TRAILING_NUMBER.sub("", title).strip()


def commit_subject(message: str) -> str:
    return message.strip().split("\n", 1)[0].strip()


def commit_code_text(paths: list[str], added_code: list[str]) -> str:
    """What a commit touched, as text for the embedding model: the changed paths and the diff's identifiers."""
    identifiers = identifiers_in_code("\n".join(added_code))
    text = "Files: " + ", ".join(paths)
    return text + ("\nCode: " + " ".join(identifiers) if identifiers else "")


@dataclass
class CommitSide:
    """One row per commit; vectors are L2-normalized."""

    times: np.ndarray  # unix seconds
    subject_vectors: np.ndarray
    message_vectors: np.ndarray
    texts: list[str]  # message + changed paths + the diff's identifiers: the words BM25 and overlaps read
    subjects: list[str]
    references: list[dict[str, str]]  # token -> kind (issue, file, identifier)


@dataclass
class ItemSide:
    """One row per knowledge representative; chunk rows of item i are chunk_vectors[chunk_starts[i]:...]."""

    sightings: list[np.ndarray]  # sorted unix seconds of every capture of the item and its near duplicates
    chunk_vectors: np.ndarray
    chunk_starts: np.ndarray
    title_vectors: np.ndarray  # zeros where there is no page title
    texts: list[str]  # text + window title + URL: what words and references are looked for in
    titles: list[str]
    kinds: list[str]  # ocr | audio | ui | document
    has_url: np.ndarray
    tracker: np.ndarray  # a tracker page (issue, pull request, ticket)

    def __len__(self) -> int:
        return len(self.kinds)


@dataclass
class Candidates:
    """(commit row, item row) pairs worth scoring, with the time facts found on the way."""

    rows: np.ndarray
    cols: np.ndarray
    hours: np.ndarray  # since the item was last seen at or before the commit; NaN for timeless items
    sightings: np.ndarray  # captures of the item inside the window

    def __len__(self) -> int:
        return len(self.rows)


def window_candidates(commit_times: np.ndarray, sightings: list[np.ndarray], window_days: float,
                      timeless_scores: np.ndarray | None = None) -> Candidates:
    """Every (commit, item) where the item was seen in [commit - window, commit]; plus, per commit, the best
    TIMELESS_PER_COMMIT timeless items (no sightings) by `timeless_scores` (commits x timeless items, in item
    order)."""
    order = np.argsort(commit_times, kind="stable")
    sorted_times = commit_times[order]
    window = window_days * DAY
    rows, cols, hours, counts = [], [], [], []
    timeless = []
    for col, seen in enumerate(sightings):
        if not len(seen):
            timeless.append(col)
            continue
        # commits whose window [t - W, t] holds a sighting: t in [s, s + W] for some sighting s
        starts = np.searchsorted(sorted_times, seen, side="left")
        ends = np.searchsorted(sorted_times, seen + window, side="right")
        hit = np.zeros(len(sorted_times) + 1, dtype=np.int32)
        np.add.at(hit, starts, 1)
        np.add.at(hit, ends, -1)
        inside = np.flatnonzero(np.cumsum(hit[:-1]) > 0)
        if not len(inside):
            continue
        commit_rows = order[inside]
        times = commit_times[commit_rows]
        last = np.searchsorted(seen, times, side="right") - 1
        first_in = np.searchsorted(seen, times - window, side="left")
        rows.append(commit_rows)
        cols.append(np.full(len(commit_rows), col))
        hours.append((times - seen[last]) / HOUR)
        counts.append(last + 1 - first_in)
    if timeless and timeless_scores is not None and timeless_scores.size:
        keep = min(TIMELESS_PER_COMMIT, len(timeless))
        best = np.argpartition(-timeless_scores, keep - 1, axis=1)[:, :keep]
        timeless_cols = np.asarray(timeless)[best]
        rows.append(np.repeat(np.arange(len(commit_times)), keep))
        cols.append(timeless_cols.ravel())
        hours.append(np.full(timeless_cols.size, np.nan))
        counts.append(np.zeros(timeless_cols.size))
    if not rows:
        empty = np.zeros(0)
        return Candidates(empty.astype(np.int64), empty.astype(np.int64), empty, empty)
    candidates = Candidates(np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64),
                            np.concatenate(hours).astype(np.float64), np.concatenate(counts).astype(np.float64))
    ordering = np.lexsort((candidates.cols, candidates.rows))
    return Candidates(candidates.rows[ordering], candidates.cols[ordering], candidates.hours[ordering],
                      candidates.sightings[ordering])


def _best_chunk(queries: np.ndarray, items: ItemSide, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """cos(query[row], best chunk of item[col]) for each pair, without a commits x chunks matrix."""
    result = np.empty(len(rows), dtype=np.float32)
    chunk_ends = np.append(items.chunk_starts[1:], len(items.chunk_vectors))
    for col in np.unique(cols):
        pairs = np.flatnonzero(cols == col)
        chunks = items.chunk_vectors[items.chunk_starts[col]:chunk_ends[col]]
        result[pairs] = (queries[rows[pairs]] @ chunks.T).max(axis=1)
    return result


class _Vocabulary:
    """Word counts of items (documents) and commits (queries) over one vocabulary, with BM25 weights."""

    K1, B = 1.2, 0.75

    def __init__(self, item_words: list[list[str]], commit_words: list[list[str]]):
        self.index: dict[str, int] = {}
        item_counts = self._counts(item_words, grow=True)
        self.items = item_counts
        documents = len(item_words)
        frequency = np.asarray((item_counts > 0).sum(axis=0)).ravel()
        self.idf = np.log((documents - frequency + 0.5) / (frequency + 0.5) + 1.0)
        lengths = np.asarray(item_counts.sum(axis=1)).ravel()
        average = max(float(lengths.mean()) if len(lengths) else 1.0, 1.0)
        coo = item_counts.tocoo()
        length_norm = 1 - self.B + self.B * lengths[coo.row] / average
        saturation = coo.data * (self.K1 + 1) / (coo.data + self.K1 * length_norm)
        self.bm25 = sparse.csr_matrix((saturation * self.idf[coo.col], (coo.row, coo.col)), shape=item_counts.shape)
        self.item_binary = (item_counts > 0).astype(np.float32)
        self.commits = (self._counts(commit_words, grow=False) > 0).astype(np.float32)

    def _counts(self, documents: list[list[str]], grow: bool) -> sparse.csr_matrix:
        rows, cols = [], []
        for row, tokens in enumerate(documents):
            for token in tokens:
                column = self.index.get(token)
                if column is None:
                    if not grow:
                        continue
                    column = self.index[token] = len(self.index)
                rows.append(row)
                cols.append(column)
        shape = (len(documents), max(1, len(self.index)))
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
        matrix.sum_duplicates()
        return matrix

    def binary(self, documents: list[list[str]]) -> sparse.csr_matrix:
        return (self._counts(documents, grow=False) > 0).astype(np.float32)


def _pair_dot(left: sparse.csr_matrix, right: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """left[rows[i]] . right[cols[i]] for every pair, in blocks (no full left x right product)."""
    result = np.zeros(len(rows), dtype=np.float64)
    if right.shape[1] != left.shape[1]:
        right = sparse.csr_matrix((right.data, right.indices, right.indptr), shape=(right.shape[0], left.shape[1]))
    for start in range(0, len(rows), 20000):
        part = slice(start, start + 20000)
        result[part] = np.asarray(left[rows[part]].multiply(right[cols[part]]).sum(axis=1)).ravel()
    return result


def pair_features(commits: CommitSide, items: ItemSide, candidates: Candidates) -> np.ndarray:
    """The FEATURES of every candidate, one row each (float64)."""
    rows, cols = candidates.rows, candidates.cols
    count = len(rows)
    if not count:
        return np.zeros((0, len(FEATURES)))
    columns: dict[str, np.ndarray] = {}
    columns["cos_subject"] = _best_chunk(commits.subject_vectors, items, rows, cols)
    columns["cos_message"] = _best_chunk(commits.message_vectors, items, rows, cols)
    has_title = np.array([bool(title) for title in items.titles])
    columns["cos_title"] = np.where(
        has_title[cols], np.einsum("ij,ij->i", commits.subject_vectors[rows], items.title_vectors[cols]), 0.0)
    columns["has_title"] = has_title[cols].astype(np.float64)

    vocabulary = _Vocabulary([words(text) for text in items.texts], [words(text) for text in commits.texts])
    idf = vocabulary.idf
    commit_weight = vocabulary.commits.multiply(idf[None, :]).tocsr()
    commit_total = np.asarray(commit_weight.sum(axis=1)).ravel()
    columns["bm25"] = _pair_dot(vocabulary.commits, vocabulary.bm25, rows, cols) / np.maximum(
        commit_total[rows] * (vocabulary.K1 + 1), 1e-9)
    columns["word_overlap"] = _pair_dot(commit_weight, vocabulary.item_binary, rows, cols) / np.maximum(
        commit_total[rows], 1e-9)
    subject_weight = vocabulary.binary([words(subject) for subject in commits.subjects]).multiply(idf[None, :]).tocsr()
    subject_total = np.asarray(subject_weight.sum(axis=1)).ravel()
    columns["subject_overlap"] = _pair_dot(subject_weight, vocabulary.item_binary, rows, cols) / np.maximum(
        subject_total[rows], 1e-9)
    title_binary = vocabulary.binary([words(title) for title in items.titles])
    columns["title_overlap"] = _pair_dot(subject_weight, title_binary, rows, cols) / np.maximum(
        subject_total[rows], 1e-9)

    item_references = [reference_tokens(text) for text in items.texts]
    issue, files, identifiers = np.zeros(count), np.zeros(count), np.zeros(count)
    for index, (row, col) in enumerate(zip(rows, cols, strict=True)):
        shared = commits.references[row].keys() & item_references[col]
        for token in shared:
            kind = commits.references[row][token]
            if kind == "issue":
                issue[index] = 1.0
            elif kind == "file":
                files[index] += 1.0
            else:
                identifiers[index] += 1.0
    columns["issue_ref"], columns["file_ref"] = issue, np.minimum(files, 3.0)
    columns["identifier_ref"] = np.log1p(identifiers)

    timeless = np.isnan(candidates.hours)
    # A document has no time: it is scored as if seen once, TIMELESS_HOURS before the commit (about the typical lead
    # of the true pages in the labelled histories), so its meaning has to carry it; never as "seen just now".
    hours = np.where(timeless, TIMELESS_HOURS, np.maximum(candidates.hours, 0.0))
    columns["log_hours"] = np.log1p(hours)
    columns["within_hour"] = (hours < 1.0).astype(np.float64)
    columns["log_sightings"] = np.where(timeless, np.log1p(1.0), np.log1p(candidates.sightings))
    columns["timeless"] = timeless.astype(np.float64)

    mean_commit = commits.message_vectors.mean(axis=0)
    per_chunk = items.chunk_vectors @ mean_commit
    hub = np.maximum.reduceat(per_chunk, items.chunk_starts) if len(per_chunk) else per_chunk
    columns["hubness"] = hub[cols]
    kinds = np.array(items.kinds)
    columns["is_audio"] = (kinds[cols] == "audio").astype(np.float64)
    columns["is_document"] = (kinds[cols] == "document").astype(np.float64)
    columns["is_browser"] = items.has_url[cols].astype(np.float64)
    columns["is_tracker"] = items.tracker[cols].astype(np.float64)
    return np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURES])


def relative_features(rows: np.ndarray, cols: np.ndarray, score: np.ndarray) -> np.ndarray:
    """RELATIVE_FEATURES from a first-stage score: the margin over the best OTHER candidate of the same commit and
    of the same item (capped; MARGIN_CAP when there is no other), and whether it is the best of each."""
    def margins(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(groups):
            return np.zeros(0), np.zeros(0)
        size = int(groups.max()) + 1
        best = np.full(size, -np.inf)
        np.maximum.at(best, groups, score)
        is_best = score >= best[groups]
        # the best among the others: the group's best unless this is it, then the runner-up
        masked = np.where(is_best, -np.inf, score)
        runner = np.full(size, -np.inf)
        np.maximum.at(runner, groups, masked)
        ties = np.zeros(size, dtype=np.int64)
        np.add.at(ties, groups, is_best.astype(np.int64))
        runner = np.where(ties > 1, best, runner)
        other = np.where(is_best, runner[groups], best[groups])
        margin = np.clip(score - other, -MARGIN_CAP, MARGIN_CAP)
        return np.where(np.isfinite(margin), margin, MARGIN_CAP), is_best.astype(np.float64)

    commit_margin, commit_best = margins(rows)
    item_margin, item_best = margins(cols)
    return np.column_stack([commit_margin, item_margin, commit_best, item_best])


def commit_references_of(message: str, paths: list[str], added_code: list[str]) -> dict[str, str]:
    return commit_references(message, paths, added_code).tokens()


def sigmoid(value: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(value, -50, 50)))
