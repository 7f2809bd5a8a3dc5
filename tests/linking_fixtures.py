"""A labelled linking world: a real git repository, a real screenpipe database and doc folder where the knowledge
that explains each commit is known.

Each commit is a story (a component x a problem): before the commit the developer reads the issue in the browser,
edits the file, talks about it in Slack, sometimes in a meeting (audio) or a design doc. Every screen is captured
several times in a row (exact duplicates) and some carry a ticking clock or cursor position (near duplicates).
Around the stories: distractors that make linking hard — issue list pages naming many issues at once, Stack
Overflow pages on the same problems for no commit, generic screens (mail, calendar, music), generic meetings, older
stories on the same component or problem, and general docs. `ground_truth[sha]` lists every source id
(`ocr:<frame id>`, `audio:<id>`, `doc:<path>`) of that commit's story.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engine.demo.screenpipe_builder import ScreenpipeWriter

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dana Dev", "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Dev", "GIT_COMMITTER_EMAIL": "dana@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

# (name, path, class / main identifier, function identifier, language)
COMPONENTS = [
    ("forecast client", "weatherly/client.py", "ForecastClient", "fetch_forecast", "py"),
    ("forecast cache", "weatherly/cache.py", "ForecastCache", "cached_forecast", "py"),
    ("auth middleware", "api/auth.py", "AuthMiddleware", "verify_session_token", "py"),
    ("search endpoint", "api/search.py", "SearchQuery", "search_documents", "py"),
    ("billing webhook", "billing/webhooks.py", "WebhookVerifier", "handle_stripe_event", "py"),
    ("upload service", "storage/upload.ts", "UploadQueue", "uploadChunk", "ts"),
    ("notification worker", "workers/notify.py", "NotificationWorker", "send_digest_email", "py"),
    ("onboarding flow", "app/components/Onboarding.tsx", "OnboardingStep", "useOnboardingState", "tsx"),
    ("metrics exporter", "ops/metrics.rs", "MetricsRegistry", "export_histogram", "rs"),
    ("report export", "reports/export_csv.py", "CsvExporter", "write_report_rows", "py"),
    ("rate limiter", "api/ratelimit.py", "TokenBucket", "check_rate_limit", "py"),
    ("settings page", "app/components/Settings.tsx", "SettingsForm", "useThemePreference", "tsx"),
]

# (slug, commit message, issue title, symptom, fix, code identifier suffix)
PROBLEMS = [
    ("retry", "Retry {name} calls on 503 with exponential backoff", "{Name} fails at once on 503",
     "the {name} gives up immediately when the upstream service answers 503 Service Unavailable",
     "retry up to three times with exponential backoff and jitter before surfacing the error", "with_retry"),
    ("timeout", "Add a request timeout to the {name}", "{Name} hangs forever when the network drops",
     "the {name} hangs without end when the network connection drops halfway through a request",
     "set a ten second timeout on every request and raise a clear error", "with_timeout"),
    ("ttl", "Compute {name} expiry in UTC", "{Name} serves stale data after midnight",
     "the {name} keeps serving yesterday's data after midnight because the expiry is computed in local time",
     "compute the expiry time in UTC and invalidate entries at the UTC day boundary", "expiry_utc"),
    ("paginate", "Paginate {name} results", "{Name} returns every row at once",
     "the {name} returns all ten thousand rows in one response and the page takes eight seconds to load",
     "return fifty rows per page with limit and offset parameters and a next page link", "paginated"),
    ("leak", "Fix memory leak in the {name}", "Memory of the {name} grows every hour",
     "memory used by the {name} grows by two hundred megabytes an hour until the process is killed",
     "close the http session after use and remove event listeners when done", "release_resources"),
    ("validate", "Validate {name} input and answer 400", "Malformed payload crashes the {name}",
     "an empty or malformed payload makes the {name} crash with an internal server error 500",
     "validate the payload and answer 400 with the list of invalid fields", "validated_payload"),
    ("logging", "Add structured logging to the {name}", "Cannot tell which {name} request failed",
     "when the {name} fails we cannot tell which request it was or how long it took",
     "log request id, duration and status as one JSON line per request", "log_request"),
    ("race", "Fix lost update race in the {name}", "{Name} loses concurrent updates",
     "two concurrent requests to the {name} write the same record and one of the updates is silently lost",
     "take a row lock and compare the version number before writing", "locked_update"),
    ("unicode", "Handle accented names in the {name}", "{Name} garbles accented names",
     "names with accents such as José or Zoë come out garbled in the {name}",
     "decode and encode as UTF-8 everywhere and add a test with accented names", "utf8_names"),
    ("batch", "Batch lookups in the {name}", "{Name} makes one query per item",
     "the {name} makes one database query per item, nine hundred queries for a single page",
     "collect the ids and fetch them with one batched query", "batched_lookup"),
    ("flag", "Roll out {name} change behind a feature flag", "Gradual rollout for the new {name}",
     "the new {name} behaviour must reach ten percent of users first so we can watch the error rate",
     "check the rollout percentage flag before taking the new code path", "rollout_enabled"),
    ("config", "Read {name} limits from the environment", "{Name} limits are hard-coded",
     "the limits of the {name} are hard-coded and need to differ between staging and production",
     "read the limits from environment variables with safe defaults", "limits_from_env"),
]

PEOPLE = ["maria", "dana", "li", "omar", "sofia", "ken"]
GENERIC_SCREENS = [
    ("Mail", "Inbox (3,214) — dana@acme.dev",
     "Inbox Flagged Drafts Sent Quarterly all-hands moved to Thursday Your receipt from Figma Invoice 2026-{n} "
     "Lunch and learn: property based testing Re: offsite dates Newsletter: the week in product design"),
    ("Calendar", "Calendar — Week {n}",
     "Monday standup 09:30 design review 14:00 1:1 with maria 16:00 Tuesday sprint planning Wednesday focus time "
     "Thursday all-hands Friday demo day retro at 15:00 dentist appointment"),
    ("Spotify", "Spotify — Focus Flow",
     "Home Search Your Library Focus Flow playlist Deep focus Lo-fi beats track {n} Brian Eno Music for Airports "
     "Recently played Liked songs shuffle repeat volume"),
    ("Finder", "Downloads",
     "Finder File Edit View Go Window Help Favorites AirDrop Recents Applications Desktop Documents Downloads "
     "invoice_{n}.pdf screenshot 2026-03-0{d}.png team-photo.jpg slides-final-v{d}.key"),
    ("Google Chrome", "The Verge — Tech news",
     "The Verge Tech Reviews Science Entertainment New laptops announced with longer battery life A look at the "
     "year in smartphones Streaming services raise prices again story {n}"),
    ("Notion", "Team wiki — Offsite {n}",
     "Team offsite agenda travel booking hotel near the venue dietary preferences activities hike or boat tour "
     "budget approved by finance packing list reminders"),
    ("zoom.us", "Zoom Meeting",
     "Zoom Meeting Mute Start Video Participants (6) Chat Share Screen Record Reactions Leave waiting for the host "
     "to start this meeting meeting id {n}"),
]


@dataclass
class Story:
    index: int
    component: tuple
    problem: tuple
    issue: int
    when: datetime
    message: str
    sha: str = ""
    sources: list | None = None


def _name(component: tuple) -> str:
    return component[0]


def _identifiers(component: tuple, problem: tuple) -> tuple[str, str]:
    main, function, language = component[2], component[3], component[4]
    suffix = problem[5]
    if language in ("ts", "tsx"):
        camel = "".join(part.capitalize() for part in suffix.split("_"))
        return main, f"{function}{camel}"
    return main, f"{function}_{suffix}"


def _code(component: tuple, problem: tuple, story_index: int) -> str:
    main, new_function = _identifiers(component, problem)
    language = component[4]
    fix = problem[4]
    if language == "py":
        return (f"# {fix}\n"
                f"def {new_function}(self, request, attempt=0):\n"
                f"    \"\"\"{problem[2].format(name=component[0], Name=component[0].capitalize())}.\"\"\"\n"
                f"    settings = {main}.settings_for(request)\n"
                f"    result = self._call(request, settings)\n"
                f"    if result.status >= 500 and attempt < settings.limit:\n"
                f"        return self.{new_function}(request, attempt + 1)\n"
                f"    return result  # story {story_index}\n")
    if language == "rs":
        return (f"// {fix}\n"
                f"pub fn {new_function}(registry: &{main}, attempt: u32) -> Result<(), Error> {{\n"
                f"    let settings = registry.settings();\n"
                f"    if attempt > settings.limit {{\n"
                f"        return Err(Error::GaveUp);\n"
                f"    }}\n"
                f"    registry.flush() // story {story_index}\n"
                f"}}\n")
    return (f"// {fix}\n"
            f"export function {new_function}(state: {main}, attempt = 0) {{\n"
            f"  const settings = state.settings;\n"
            f"  if (attempt > settings.limit) {{\n"
            f"    throw new Error('gave up');\n"
            f"  }}\n"
            f"  return state.next(); // story {story_index}\n"
            f"}}\n")


def _git(path: Path, *args: str, when: datetime | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    if when:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=path, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@dataclass
class LabelledWorld:
    config: Path
    workspace: Path
    screenpipe_db: Path
    repo: Path
    truth: dict[str, list[str]]
    stories: list[Story]


def build_labelled_world(root: Path, commits: int = 24, seed: int = 11, target_frames: int | None = None,
                         audio_rows: int | None = None) -> LabelledWorld:
    """Build the world under `root`; `target_frames` / `audio_rows` pad it with distractors to a given scale."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    combos = [(c, p) for c in COMPONENTS for p in PROBLEMS]
    rng.shuffle(combos)
    stories, when = [], START
    issues = rng.sample(range(100, 999), commits)
    for index in range(commits):
        component, problem = combos[index % len(combos)]
        when = when + timedelta(hours=rng.uniform(6, 40))
        name = _name(component)
        message = problem[1].format(name=name)
        if rng.random() < 0.4:
            message += f" (#{issues[index]})"
        stories.append(Story(index, component, problem, issues[index], when, message))

    frames_per_story = 40 if target_frames is None else max(10, int(target_frames * 0.6 / max(1, commits)))
    db_path = root / "screenpipe.sqlite"
    docs = root / "docs"
    (docs / "design").mkdir(parents=True, exist_ok=True)
    (docs / "README.md").write_text(
        "# acme platform\n\nHow to run the services locally: install the toolchain, copy .env.example to .env, run "
        "make dev. Services: api, billing, workers, weatherly, storage, app, ops. Code review needs one approval; "
        "deploys go out from main every afternoon.\n", encoding="utf-8")
    (docs / "CONTRIBUTING.md").write_text(
        "# Contributing\n\nWrite tests for every change, keep commits small, link the issue in the commit message "
        "when there is one, run the linters before pushing, and ask in #api-dev when unsure.\n", encoding="utf-8")
    frames_written = 0
    with ScreenpipeWriter(db_path) as writer:
        events: list[tuple[datetime, str, tuple]] = []  # (moment, kind, payload) written in time order
        for story in stories:
            name, Name = _name(story.component), _name(story.component).capitalize()
            path = story.component[1]
            repo_name = path.split("/")[0]
            symptom = story.problem[3].format(name=name)
            fix = story.problem[4]
            title = story.problem[2].format(name=name, Name=Name)
            main, new_function = _identifiers(story.component, story.problem)
            t = story.when
            tabs = " ".join(rng.sample(["Gmail", "Calendar", "Jira board", "Figma", "Notion", "YouTube",
                                        "Grafana dashboard", "Sentry", "Hacker News", "Google Docs"], 4))
            issue_text = (f"{tabs} acme/{repo_name} Issues Pull requests Actions Projects Wiki #{story.issue} {title} "
                          f"Open opened by {rng.choice(PEOPLE)} {symptom}. Steps to reproduce: call the {name} under "
                          f"load and watch the logs. Expected: {fix}. Labels: bug priority-high")
            open_tabs = " ".join(component[1].split("/")[-1] for component in rng.sample(COMPONENTS, 2))
            editor_text = (f"File Edit Selection View Go Run Terminal Help EXPLORER OPEN EDITORS {open_tabs} "
                           f"{path} {main} {_code(story.component, story.problem, story.index)} "
                           f"PROBLEMS OUTPUT TERMINAL main {repo_name} Ln {rng.randint(1, 300)}, Col 1 Spaces: 4")
            slack_text = (f"#{repo_name}-dev {story.problem[0]} thread {rng.choice(PEOPLE)}: heads up, {symptom}. "
                          f"{rng.choice(PEOPLE)}: I think we should {fix}. dana: on it, I will change {path} today")
            kinds = [("issue", t - timedelta(hours=rng.uniform(3, 60)),
                      ("Google Chrome", f"#{story.issue} {title} · acme/{repo_name}",
                       f"https://github.com/acme/{repo_name}/issues/{story.issue}", issue_text)),
                     ("editor", t - timedelta(minutes=rng.uniform(10, 180)),
                      ("Code", f"{path.split('/')[-1]} — {repo_name}", None, editor_text))]
            if rng.random() < 0.6:
                kinds.append(("slack", t - timedelta(hours=rng.uniform(1, 48)),
                              ("Slack", f"#{repo_name}-dev", None, slack_text)))
            for kind, moment, payload in kinds:
                events.append((moment, "story-frame", (story.index, kind, payload)))
            # Near misses around the story: the same component with another problem (an open issue nobody fixed
            # yet), the same problem on another component (someone else's thread).
            if rng.random() < 0.7:
                other = rng.choice([problem for problem in PROBLEMS if problem is not story.problem])
                number = rng.randint(1000, 1999)
                other_title = other[2].format(name=name, Name=Name)
                events.append((t - timedelta(hours=rng.uniform(-48, 48)), "frame", (
                    "Google Chrome", f"#{number} {other_title} · acme/{repo_name}",
                    f"https://github.com/acme/{repo_name}/issues/{number}",
                    f"acme/{repo_name} Issues Pull requests Actions #{number} {other_title} Open opened by "
                    f"{rng.choice(PEOPLE)} {other[3].format(name=name)}. Proposal: {other[4]}. Labels: triage")))
            if rng.random() < 0.5:
                other = rng.choice([component for component in COMPONENTS if component is not story.component])
                other_repo = other[1].split("/")[0]
                events.append((t - timedelta(hours=rng.uniform(-48, 48)), "frame", (
                    "Slack", f"#{other_repo}-dev", None,
                    f"#{other_repo}-dev {rng.choice(PEOPLE)}: {story.problem[3].format(name=other[0])}. "
                    f"{rng.choice(PEOPLE)}: let us {story.problem[4]}, but not this sprint, I opened a ticket")))
            if rng.random() < 0.4:
                events.append((t - timedelta(hours=rng.uniform(2, 30)), "story-audio", (
                    story.index, f"so about the {name}: {symptom}. I would {fix}. dana can you take it, it is "
                                 f"{'issue ' + str(story.issue) if rng.random() < 0.5 else 'the one from yesterday'}")))
            if rng.random() < 0.2:
                doc_path = docs / "design" / f"{story.index:03d}-{story.problem[0]}-{repo_name}.md"
                doc_path.write_text(f"# {title}\n\nProblem: {symptom}.\n\nDecision: {fix}. The change lives in "
                                    f"`{path}` ({main}, {new_function}).\n", encoding="utf-8")
                story.sources = [f"doc:docs/design/{doc_path.name}"]
        # Distractors, spread over the whole time span.
        span = (stories[-1].when - START).total_seconds()
        for _ in range(max(8, commits // 2)):  # issue list pages naming several issues at once
            listed = rng.sample(stories, min(6, len(stories)))
            text = "acme Issues 2 Open Closed Sort " + " ".join(
                f"#{s.issue} {s.problem[2].format(name=_name(s.component), Name=_name(s.component).capitalize())}"
                f" opened by {rng.choice(PEOPLE)}" for s in listed)
            events.append((START + timedelta(seconds=rng.uniform(0, span)), "frame",
                           ("Google Chrome", "Issues · acme", "https://github.com/issues", text)))
        for _ in range(max(8, commits // 2)):  # Stack Overflow on the same problems, for no commit
            component, problem = rng.choice(COMPONENTS), rng.choice(PROBLEMS)
            text = (f"Stack Overflow Questions Tags Users How do I handle this: {problem[3].format(name='service')}? "
                    f"Asked {rng.randint(2, 9)} years ago Viewed {rng.randint(1, 90)}k times. Answer: {problem[4]}. "
                    f"Share Improve this answer Follow")
            events.append((START + timedelta(seconds=rng.uniform(0, span)), "frame",
                           ("Google Chrome", f"{problem[2].format(name='service', Name='Service')} - Stack Overflow",
                            "https://stackoverflow.com/questions/" + str(rng.randint(10**6, 10**7)), text)))
        generic = max(20, commits * 2)
        for _ in range(generic):
            app, window, text = rng.choice(GENERIC_SCREENS)
            n, d = rng.randint(1, 99), rng.randint(1, 9)
            events.append((START + timedelta(seconds=rng.uniform(0, span)), "frame",
                           (app, window.format(n=n), None, text.format(n=n, d=d))))
        generic_audio = max(6, commits // 3) if audio_rows is None else max(0, audio_rows - len(
            [e for e in events if e[1] == "story-audio"]))
        for index in range(generic_audio):
            topic = rng.choice(["the offsite", "lunch", "the hiring plan", "the quarterly goals", "the demo",
                                "the new office", "vacation plans", "the conference talk"])
            events.append((START + timedelta(seconds=rng.uniform(0, span)), "audio",
                           f"okay everyone, quick update on {topic}: {rng.choice(PEOPLE)} will send the details, "
                           f"we meet again on {rng.choice(['Monday', 'Tuesday', 'Thursday'])} at "
                           f"{rng.randint(9, 17)} o'clock, item {index}, any questions before we move on"))
        events.sort(key=lambda event: event[0])
        screen_events = sum(1 for event in events if event[1] in ("frame", "story-frame"))
        repeats_mean = max(2, (target_frames or screen_events * 6) // max(1, screen_events))
        for moment, kind, payload in events:
            if kind == "audio":
                writer.add_audio(moment, payload)
                continue
            if kind == "story-audio":
                story_index, text = payload
                audio_id = writer.add_audio(moment, text)
                stories[story_index].sources = (stories[story_index].sources or []) + [f"audio:{audio_id}"]
                continue
            story_index = payload[0] if kind == "story-frame" else None
            app, window, url, text = payload[-1] if kind == "story-frame" else payload
            ticking = rng.random() < 0.35
            repeats = max(1, int(rng.expovariate(1 / repeats_mean)) + 1)
            if story_index is not None:
                repeats = min(repeats, frames_per_story)
            for repeat in range(repeats):
                at = moment + timedelta(seconds=2 * repeat, microseconds=rng.randint(0, 999_999))
                shown = f"{text} {at:%H:%M}" if ticking else text
                frame_id = writer.add_frame(at, shown, app, window, url)
                frames_written += 1
                if story_index is not None:
                    stories[story_index].sources = (stories[story_index].sources or []) + [f"ocr:{frame_id}"]

    repo = root / "repo"
    repo.mkdir(exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    for component in COMPONENTS:
        target = repo / component[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {component[0]}\n", encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Initial layout", when=START - timedelta(days=30))
    for story in stories:
        target = repo / story.component[1]
        with target.open("a", encoding="utf-8") as handle:
            handle.write("\n" + _code(story.component, story.problem, story.index))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", story.message, when=story.when)
        story.sha = _git(repo, "rev-parse", "HEAD")

    truth = {story.sha: sorted(story.sources or []) for story in stories}
    config = root / "pipeline_config.json"
    config.write_text(json.dumps({
        "paths": {"screenpipe_db": "screenpipe.sqlite", "git_repo": "repo",
                  "output_file": "output/training_data.jsonl"},
        "document_sources": {"directories": ["docs"], "extensions": [".md"]},
        "filtering": {"min_knowledge_length": 100, "min_code_lines": 5, "max_commits": 500, "top_k_matches": 3},
        "confidence": {"min_confidence": 0.6},
        "code_extensions": [".py", ".ts", ".tsx", ".rs"],
        "studio": {"workspace": "workspace"},
    }, indent=2), encoding="utf-8")
    (root / "ground_truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    return LabelledWorld(config, root / "workspace", db_path, repo, truth, stories)


_PREPARED: dict[str, tuple[LabelledWorld, dict]] = {}


def prepared_world(base: Path, commits: int = 24, seed: int = 11) -> tuple[LabelledWorld, dict]:
    """The labelled world built, extracted and linked in all three modes once per test process (the embeddings are
    then in its workspace); returns (world, {mode: LinkResult}). Copy it (`copy_world`) before changing it."""
    from engine.config import PipelineConfig
    from engine.extract import extract
    from engine.pipeline import link_and_write

    key = f"{commits}-{seed}"
    if key not in _PREPARED:
        world = build_labelled_world(base / f"world-{key}", commits=commits, seed=seed)
        config = PipelineConfig.load(world.config)
        extract(config, world.workspace)
        runs = {mode: link_and_write(config, world.workspace, mode) for mode in ("semantic", "hybrid", "best")}
        _PREPARED[key] = (world, runs)
    return _PREPARED[key]


def copy_world(world: LabelledWorld, destination: Path) -> LabelledWorld:
    """A private copy of a prepared world (same relative layout, same workspace with its cached embeddings)."""
    import shutil

    shutil.copytree(world.config.parent, destination)
    return LabelledWorld(destination / world.config.name, destination / world.workspace.name,
                         destination / world.screenpipe_db.name, destination / world.repo.name, world.truth,
                         world.stories)
