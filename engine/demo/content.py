"""The demo world's story, as data: engine/demo/__init__.py turns it into a screenpipe database, a git repo and docs.

The project is "skycast", a small weather CLI in Python with a React/TypeScript dashboard, built by Maya Lindqvist
in October 2026 (teammate Jonas Okafor, product manager Priya Raman, designer Sam Ito, user tomasz-b). Every
commit below has the screens, calls and docs that led to it ("visits", "audio", "docs"); two commits by Jonas
have none on Maya's machine. Screens listed in SCREENS carry the commit keys they truly discuss ("topics");
screens with no topics are distractors, and "hard_for" marks those that share vocabulary with a commit without
explaining it.

Conventions:
- Times are UTC, "YYYY-MM-DD HH:MM[:SS]". Maya works in Berlin (CEST until 2026-10-25, then CET).
- Changes are applied in order: ("write", path, text), ("replace", path, old, new) where old occurs exactly once,
  ("append", path, text), ("rename", old_path, new_path), ("binary", path, base64 text).
- Visits are (screen key, number of captures); audio lines are (minutes after the discussion starts, voice, text)
  and relate to the commit they are listed under unless a fourth element gives other commit keys.
- Screen texts may hold @LN@, @COL@ (editor cursor), @UNREAD@ (unread counter) and @TIME@ (Maya's local clock,
  HH:MM): each capture fills them in, which makes the near-duplicates screenpipe really records.

The skycast files themselves (its Python, TypeScript and Rust at each version) are in skycast_files.yaml beside
this module, as data: FILES[name] is the text a commit below writes.
"""

from pathlib import Path

import yaml

FILES: dict[str, str] = yaml.load(Path(__file__).with_name("skycast_files.yaml").read_text(encoding="utf-8"),
                                  Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

DEMO_VERSION = 4  # 4: the last two weeks (translations, icons, providers, alerts, ...)

AUTHORS = {
    "maya": ("Maya Lindqvist", "maya@skycast.dev"),
    "jonas": ("Jonas Okafor", "jonas@skycast.dev"),
}

# Who speaks in calls: (device, speaker id). Maya is on the laptop microphone; the others come through the speakers.
VOICES = {
    "maya": ("MacBook Pro Microphone (input)", 1),
    "jonas": ("MacBook Pro Speakers (output)", 2),
    "priya": ("MacBook Pro Speakers (output)", 3),
    "sam": ("MacBook Pro Speakers (output)", 4),
}

# 32x32 sun icon and 16x16 favicon (RGBA PNG).
PNG_SUN = (
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAYAAABzenr0AAAAmUlEQVR42mNgGAVkgP+rGP4TIzY8HECsZTRzFMgQdIOIsQybPpqFAl2ihBQD"
    "KbIcV9BR6gCSooSQ4v9HgPJYMLnmkZYAcViOzRFUTYjEWE4oJOhiOdmOgAUXOcFOSnQQHS0o+ZxCB1CcDqgRAkPPAXSPgkGXCOmeDQdlQTRg"
    "RfGAVkaDojoe0AbJoGuSDXijdMCb5aM9o2EPAOJGmBfbL7tDAAAAAElFTkSuQmCC"
)
PNG_FAVICON = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAN0lEQVR42mNgoAWwaPn/HxumSDNRhhDSjNcQYjVjNYRUzRiGjBpABQMojkaq"
    "JCSqJGWqZCZSAQBWAaloLhfLIAAAAABJRU5ErkJggg=="
)

# --------------------------------------------------------------------------------------------------------------
# The project's files, first versions (later commits edit them with "replace" and "append").
# --------------------------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------------------------
# The web dashboard (web/): Vite + React + TypeScript.
# --------------------------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------------------------
# docs/ beside the repository (the team wiki, exported as Markdown).
# --------------------------------------------------------------------------------------------------------------

DOCS = {
    "architecture.md": """# skycast architecture

skycast is two small clients of the free Open-Meteo API: a Python command line (`skycast/`) and a React
dashboard (`web/`). Neither has a backend or an API key.

## Command line (Python 3.11, standard library only)

| module | job |
|---|---|
| `skycast/cli.py` | argparse entry point: `skycast now`, `skycast week`, `--units`, `--json` |
| `skycast/client.py` | HTTP: `_get_json()` with retries, `current_weather()`, `daily_forecast()` |
| `skycast/geocode.py` | city name -> coordinates (`find_place`) |
| `skycast/units.py` | °C/°F and km/h/mph conversions and formatting |
| `skycast/formatting.py` | tables and JSON documents for the terminal |
| `skycast/cache.py` | on-disk response cache |
| `skycast/config.py` | user settings (`~/.config/skycast/config.toml`) |

Rules we keep:
- No third-party dependency in the CLI: `urllib.request` is enough and keeps `pipx install` instant.
- The API is always called in metric units; conversion happens locally, so one cached answer serves both unit
  systems.
- Every network call goes through `client._get_json()`, which owns timeouts, retries and error messages. Other
  modules never call `urlopen` themselves.
- Errors the user can act on are `WeatherError` with one sentence; the CLI prints `skycast: <sentence>` and exits 1.

## Settings

Settings come from `~/.config/skycast/config.toml` (`$SKYCAST_CONFIG` overrides the path):

```toml
[api]
base_url = "https://api.open-meteo.com/v1/forecast"   # or a self-hosted instance
geocoding_url = "https://geocoding-api.open-meteo.com/v1/search"
timeout = 10

[display]
units = "metric"
```
A missing file means the defaults. Self-hosting Open-Meteo (their Docker image) is the supported way to run
skycast without calling the public servers.

## Dashboard

Vite + React 18 + TypeScript (strict). `web/src/api.ts` is the only file that calls `fetch`. Components are
function components with hooks; state lives in hooks under `web/src/hooks/`.
""",
    "retry-policy.md": """# Retry policy for calls to Open-Meteo

Owner: Maya. Applies to `skycast/client.py` (`_get_json`) and later to `web/src/api.ts`.

## What we retry
- HTTP 502, 503 and 504: the public API returns 503 Service Unavailable during deploys and when a model run is
  being ingested; these clear within seconds.
- Connection errors and timeouts (`URLError`, `socket.timeout`).

## What we never retry
- 4xx answers (400 for a bad parameter, 404, 429 Too Many Requests). A 400 will fail the same way again, and
  retrying a 429 makes the rate limiting worse: the cache (docs/caching.md) is the answer to 429.

## How
- At most 4 attempts (`MAX_ATTEMPTS = 4`), so 3 retries.
- Exponential backoff with full jitter: wait `uniform(0, min(8 s, 0.5 s * 2**attempt))` before each retry, so
  many clients that failed together do not come back together.
- If the 503 carries a `Retry-After` header (delta-seconds or an HTTP date), wait that long instead, capped at
  8 s (`MAX_BACKOFF`).
- After the last attempt raise `WeatherError("503 Service Unavailable from api.open-meteo.com")`.

## Outages: circuit breaker
Retries help with blips, not outages. When a status-bar loop runs skycast every minute during an outage, every run
makes 4 calls. A process-wide circuit breaker opens after 5 consecutive 5xx failures and refuses calls for 30 s
(fail fast with "service unavailable"), then lets one trial call through (half-open): success closes it, failure
opens it again.
""",
    "api-notes.md": """# Open-Meteo API notes

Things we learned the hard way while building skycast.

## Forecast: `GET https://api.open-meteo.com/v1/forecast`
- `latitude`, `longitude` (WGS84 decimal degrees) are required.
- `current=temperature_2m,wind_speed_10m,wind_direction_10m,weather_code` returns a `current` object.
- `daily=temperature_2m_max,temperature_2m_min,wind_speed_10m_max,precipitation_probability_max,weather_code`
  returns arrays in `daily`, one entry per day, dates in `daily.time`.
- `forecast_days` 1-16 (default 7).
- **`timezone`**: daily values are aggregated over days in GMT unless you pass `timezone=auto` (or an IANA name).
  Without it a Tokyo forecast starts "yesterday" in local terms. With `timezone=auto` the answer also carries
  `utc_offset_seconds` and `timezone_abbreviation`.
- Wind direction is meteorological: degrees the wind blows FROM (0 = north, 90 = east).
- Values can be `null`: a station in maintenance reports `"wind_speed_10m": null`, and
  `precipitation_probability_max` is null beyond the ensemble horizon.
- Units: metric by default; `temperature_unit=fahrenheit` and `wind_speed_unit=mph` exist but we convert locally.

## Geocoding: `GET https://geocoding-api.open-meteo.com/v1/search`
- `name` (at least 2 characters), `count` (1-100, default 10), `language`, `format=json`.
- Results carry `name`, `latitude`, `longitude`, `country`, `country_code`, `admin1` (state/region), `timezone`,
  `population`. They are ordered by population, so "Springfield" gives Springfield, Missouri first; filter by
  `admin1` or `country_code` to pick another one.
- No results means the `results` key is missing entirely (not an empty list).

## Limits
Fewer than 10,000 calls a day for non-commercial use; bursts get `429 Too Many Requests`. Models update at most
every 15 minutes, so caching answers for 10 minutes loses nothing.
""",
    "caching.md": """# Response cache

`skycast/cache.py` keeps API answers on disk under `$XDG_CACHE_HOME/skycast` (default `~/.cache/skycast`).

- Key: SHA-256 of the full request URL (coordinates, variables, days, timezone), first 32 hex digits.
  Different cities have different coordinates and therefore different keys.
- TTL: 600 s (`DEFAULT_TTL`). Older files are ignored, not deleted; `skycast cache clear` can come later.
- Writes are atomic (`write temp file + os.replace`), so two skycast processes (e.g. tmux and waybar) never read
  half a file.
- A corrupt or unreadable file is treated as a miss.

Why: people run skycast from status bars (waybar, polybar, tmux) every 30-60 s. Without a cache that is 2,880
calls a day per machine and Open-Meteo answers `429 Too Many Requests` (issue #15).
""",
    "onboarding.md": """# New laptop setup

For anyone joining the team (or Maya after the next macOS upgrade).

1. Install Homebrew, then `brew install git python@3.12 node@20 jq`.
2. `git config --global user.name` / `user.email`; add your SSH key to GitHub.
3. Clone: `git clone git@github.com:skycast-dev/skycast.git ~/code/skycast`.
4. Python: `python3 -m venv .venv && . .venv/bin/activate && pip install -e . pytest`.
5. Web: `cd web && npm install && npm run dev` (http://localhost:5173).
6. VS Code extensions: Python, Pylance, ESLint, Prettier, GitLens.
7. Slack channels: #skycast, #skycast-design, #random. Standup is 09:30 Berlin time on Zoom.

Expense policy, holidays and the VPN are in the company handbook, not here.
""",
}

# --------------------------------------------------------------------------------------------------------------
# The commits, in order, each with what led to it.
# --------------------------------------------------------------------------------------------------------------

COMMITS = [
    {
        "key": "init",
        "author": "maya",
        "discussed": "2026-10-05 07:40",
        "committed": "2026-10-05 12:18:07",
        "message": "Initial skycast CLI: current weather from Open-Meteo\n\n"
        "`skycast now --lat --lon` prints temperature, wind and sky from the free\n"
        "Open-Meteo forecast API. Standard library only (urllib), as agreed in\n"
        "docs/architecture.md.",
        "changes": [
            ("write", ".gitignore", FILES["GITIGNORE"]),
            ("write", "pyproject.toml", FILES["PYPROJECT"]),
            ("write", "README.md", FILES["README_V1"]),
            ("write", "skycast/__init__.py", FILES["INIT_PY"]),
            ("write", "skycast/client.py", FILES["CLIENT_V1"]),
            ("write", "skycast/cli.py", FILES["CLI_V1"]),
        ],
        "visits": [("om-docs-forecast", 7), ("vscode-client-v1", 6), ("term-first-run", 4)],
        "audio": [
            (-8, "priya", " Okay, so for skycast the first milestone is really just the terminal thing. You type a"
             " command, you get the current temperature and the wind. No accounts, no API key, that's the whole"
             " pitch."),
            (-6, "maya", " Yeah, and Open-Meteo doesn't need a key, so I'll do the CLI with just urllib from the"
             " standard library, no requests. I wrote that down in the architecture doc."),
        ],
        "docs": ["docs/architecture.md"],
    },
    {
        "key": "geocode",
        "author": "maya",
        "discussed": "2026-10-06 07:55",
        "committed": "2026-10-06 13:41:52",
        "message": "Look up cities by name with the Open-Meteo geocoding API\n\n"
        "`skycast now Berlin` instead of remembering coordinates. --lat/--lon\n"
        "still work when no city is given.",
        "changes": [
            ("write", "skycast/geocode.py", FILES["GEOCODE_V1"]),
            ("replace", "skycast/cli.py",
             "from skycast.client import WeatherError, current_weather\n",
             "from skycast.client import WeatherError, current_weather\nfrom skycast.geocode import find_place\n"),
            ("replace", "skycast/cli.py",
             '    now.add_argument("--lat", type=float, required=True, help="latitude in degrees")\n'
             '    now.add_argument("--lon", type=float, required=True, help="longitude in degrees")\n',
             '    now.add_argument("city", nargs="?", help="city name, e.g. Berlin")\n'
             '    now.add_argument("--lat", type=float, help="latitude in degrees (instead of a city)")\n'
             '    now.add_argument("--lon", type=float, help="longitude in degrees (instead of a city)")\n'),
            ("replace", "skycast/cli.py",
             "    try:\n        current = current_weather(args.lat, args.lon)\n",
             "    if args.city is None and (args.lat is None or args.lon is None):\n"
             '        print("skycast: give a city name or both --lat and --lon", file=sys.stderr)\n'
             "        return 2\n"
             "    try:\n"
             "        if args.city is not None:\n"
             "            place = find_place(args.city)\n"
             "            latitude, longitude = place.latitude, place.longitude\n"
             "        else:\n"
             "            latitude, longitude = args.lat, args.lon\n"
             "        current = current_weather(latitude, longitude)\n"),
        ],
        "visits": [("om-docs-geocoding", 6), ("term-lat-required", 3), ("vscode-geocode", 7)],
        "audio": [
            (-20, "maya", " Yesterday I got the first version of the CLI working. Today I want city names, because"
             " nobody knows the latitude of Berlin. Open-Meteo has a geocoding endpoint, so that should be quick."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "units",
        "author": "maya",
        "discussed": "2026-10-07 08:10",
        "committed": "2026-10-07 14:05:33",
        "message": "Add --units imperial for °F and mph (#3)\n\n"
        "The API is still called in metric; units.py converts locally so one\n"
        "cached answer serves both unit systems. Closes #3.",
        "changes": [
            ("write", "skycast/units.py", FILES["UNITS_V1"]),
            ("replace", "skycast/cli.py",
             "from skycast.geocode import find_place\n",
             "from skycast.geocode import find_place\n"
             "from skycast.units import UNIT_SYSTEMS, format_temperature, format_wind\n"),
            ("replace", "skycast/cli.py",
             '    now.add_argument("--lon", type=float, help="longitude in degrees (instead of a city)")\n',
             '    now.add_argument("--lon", type=float, help="longitude in degrees (instead of a city)")\n'
             "    now.add_argument(\n"
             '        "--units", choices=UNIT_SYSTEMS, default="metric", help="metric (°C, km/h) or imperial'
             ' (°F, mph)"\n'
             "    )\n"),
            ("replace", "skycast/cli.py",
             "    print(f\"{current['temperature_2m']:.1f} °C, wind {current['wind_speed_10m']:.0f} km/h,"
             ' {description}")\n',
             '    temperature = format_temperature(current["temperature_2m"], args.units)\n'
             '    wind = format_wind(current["wind_speed_10m"], args.units)\n'
             '    print(f"{temperature}, wind {wind}, {description}")\n'),
        ],
        "visits": [("gh-issue-3", 6), ("slack-units", 4), ("vscode-units", 6)],
        "audio": [
            (-35, "maya", " Today I'm picking up issue three from Tomasz, the imperial units one. Fahrenheit and"
             " miles per hour. I'll keep the API call metric and just convert on our side."),
        ],
        "docs": [],
    },
    {
        "key": "retry",
        "author": "maya",
        "discussed": "2026-10-08 07:35",
        "committed": "2026-10-08 13:55:40",
        "message": "Retry 502/503/504 with exponential backoff and jitter (#12)\n\n"
        "_get_json() now makes up to 4 attempts on 502/503/504 and connection\n"
        "errors, waiting uniform(0, min(8, 0.5 * 2**attempt)) seconds between\n"
        "them (docs/retry-policy.md). 4xx answers are not retried. After the\n"
        "last attempt it raises WeatherError instead of a raw HTTPError traceback.",
        "changes": [
            ("replace", "skycast/client.py",
             "import json\nimport urllib.parse\nimport urllib.request\n",
             "import json\nimport random\nimport time\n"
             "import urllib.error\nimport urllib.parse\nimport urllib.request\n"),
            ("replace", "skycast/client.py",
             'USER_AGENT = "skycast/0.1 (+https://github.com/skycast-dev/skycast)"\n',
             'USER_AGENT = "skycast/0.1 (+https://github.com/skycast-dev/skycast)"\n'
             "MAX_ATTEMPTS = 4\n"
             "RETRY_STATUSES = frozenset({502, 503, 504})\n"
             "BACKOFF_BASE = 0.5\n"
             "MAX_BACKOFF = 8.0\n"),
            ("replace", "skycast/client.py",
             "def _get_json(url: str, timeout: float = DEFAULT_TIMEOUT) -> dict:\n"
             '    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})\n'
             "    with urllib.request.urlopen(request, timeout=timeout) as response:\n"
             "        return json.load(response)\n",
             "def backoff_delay(attempt: int) -> float:\n"
             '    """Exponential backoff with full jitter: up to 0.5 s, 1 s, 2 s ... capped at MAX_BACKOFF."""\n'
             "    ceiling = min(MAX_BACKOFF, BACKOFF_BASE * 2**attempt)\n"
             "    return random.uniform(0, ceiling)\n"
             "\n\n"
             "def _get_json(url: str, timeout: float = DEFAULT_TIMEOUT) -> dict:\n"
             '    """GET a JSON document, retrying transient server errors (docs/retry-policy.md)."""\n'
             '    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})\n'
             "    for attempt in range(MAX_ATTEMPTS):\n"
             "        try:\n"
             "            with urllib.request.urlopen(request, timeout=timeout) as response:\n"
             "                return json.load(response)\n"
             "        except urllib.error.HTTPError as exc:\n"
             "            if exc.code not in RETRY_STATUSES or attempt == MAX_ATTEMPTS - 1:\n"
             '                raise WeatherError(f"{exc.code} {exc.reason} from {request.host}") from exc\n'
             "            delay = backoff_delay(attempt)\n"
             "        except urllib.error.URLError as exc:\n"
             "            if attempt == MAX_ATTEMPTS - 1:\n"
             '                raise WeatherError(f"cannot reach {request.host}: {exc.reason}") from exc\n'
             "            delay = backoff_delay(attempt)\n"
             "        time.sleep(delay)\n"
             '    raise AssertionError("unreachable")\n'),
            ("append", "README.md",
             "\n## Network errors\n\n"
             "502, 503 and 504 answers and connection errors are retried up to 3 times with exponential backoff\n"
             "and jitter; other errors fail at once with one line on stderr.\n"),
        ],
        "visits": [
            ("term-503-traceback", 5), ("gh-issue-12", 8), ("slack-payments-503", 4), ("slack-skycast-503", 5),
            ("gh-requests-retry", 3), ("vscode-client-retry", 7),
        ],
        "audio": [
            (-5, "maya", " Blocker-ish: issue twelve. When Open-Meteo answers 503, skycast just dies with an HTTP"
             " error traceback. It happened to me twice this morning, it's their deploy window I think."),
            (40, "jonas", " So are you just going to loop on the 503? Please put some jitter on the backoff, otherwise"
             " all the status bars retry at exactly the same second."),
            (41, "maya", " Yeah, full jitter, max four attempts, cap at eight seconds, and only for 502, 503 and 504."
             " Four hundreds never get retried. I'm writing it down in the retry policy doc."),
            (42, "maya", " Yeah, full jitter, max four attempts, cap at eight seconds, and only for 502, 503 and 504."
             " Four hundreds never get retried. I'm writing it down in the retry policy doc."),
        ],
        "docs": ["docs/retry-policy.md"],
    },
    {
        "key": "retry-after",
        "author": "maya",
        "discussed": "2026-10-09 07:45",
        "committed": "2026-10-09 12:31:18",
        "message": "Honour Retry-After on 503 and cover the backoff with tests (#12)\n\n"
        "When a 503 carries Retry-After (seconds or an HTTP date) wait that\n"
        "long, capped at MAX_BACKOFF, instead of the jittered backoff. New\n"
        "tests/test_client.py fakes urlopen: retries then succeeds, gives up\n"
        "after MAX_ATTEMPTS, never retries 404, uses Retry-After.",
        "changes": [
            ("replace", "skycast/client.py",
             "import json\nimport random\n",
             "import email.utils\nimport json\nimport random\n"),
            ("replace", "skycast/client.py",
             "import urllib.request\n\nBASE_URL",
             "import urllib.request\nfrom datetime import datetime, timezone\n\nBASE_URL"),
            ("replace", "skycast/client.py",
             "    return random.uniform(0, ceiling)\n",
             "    return random.uniform(0, ceiling)\n"
             "\n\n"
             "def retry_after_seconds(value: str | None) -> float | None:\n"
             '    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""\n'
             "    if not value:\n"
             "        return None\n"
             "    value = value.strip()\n"
             "    if value.isdigit():\n"
             "        return min(float(value), MAX_BACKOFF)\n"
             "    try:\n"
             "        when = email.utils.parsedate_to_datetime(value)\n"
             "    except (TypeError, ValueError):\n"
             "        return None\n"
             "    wait = (when - datetime.now(timezone.utc)).total_seconds()\n"
             "    return min(max(wait, 0.0), MAX_BACKOFF)\n"),
            ("replace", "skycast/client.py",
             '                raise WeatherError(f"{exc.code} {exc.reason} from {request.host}") from exc\n'
             "            delay = backoff_delay(attempt)\n",
             '                raise WeatherError(f"{exc.code} {exc.reason} from {request.host}") from exc\n'
             '            delay = retry_after_seconds(exc.headers.get("Retry-After")) or backoff_delay(attempt)\n'),
            ("write", "tests/test_client.py", FILES["TEST_CLIENT_V1"]),
        ],
        "visits": [
            ("term-pytest-retry-after-fail", 6), ("mdn-retry-after", 5), ("vscode-test-client", 6),
            ("term-pytest-green", 3),
        ],
        "audio": [],
        "docs": ["docs/retry-policy.md"],
    },
    {
        "key": "cache",
        "author": "maya",
        "discussed": "2026-10-09 12:55",
        "committed": "2026-10-09 16:10:44",
        "message": "Cache API answers on disk for 10 minutes (#15)\n\n"
        "Status-bar loops (waybar, tmux) run skycast every 30-60 s and got\n"
        "429 Too Many Requests. Answers are now cached under ~/.cache/skycast,\n"
        "keyed by the request URL, for DEFAULT_TTL = 600 s; writes are atomic.",
        "changes": [
            ("write", "skycast/cache.py", FILES["CACHE_V1"]),
            ("replace", "skycast/client.py",
             "from datetime import datetime, timezone\n\nBASE_URL",
             "from datetime import datetime, timezone\n\nfrom skycast import cache\n\nBASE_URL"),
            ("replace", "skycast/client.py",
             '    payload = _get_json(f"{BASE_URL}?{query}")\n    return payload["current"]\n',
             '    url = f"{BASE_URL}?{query}"\n'
             "    payload = cache.load(url)\n"
             "    if payload is None:\n"
             "        payload = _get_json(url)\n"
             "        cache.store(url, payload)\n"
             '    return payload["current"]\n'),
        ],
        "visits": [("gh-issue-15", 6), ("slack-waybar", 4), ("so-django-cache", 3), ("vscode-cache", 7)],
        "audio": [
            (-3, "maya", " Quick one before lunch is over: Tomasz runs skycast from waybar every thirty seconds and"
             " now he's getting 429 too many requests. I'll add a small disk cache, ten minutes, keyed by the URL."),
        ],
        "docs": ["docs/caching.md"],
    },
    {
        "key": "version-flag",
        "author": "jonas",
        "discussed": None,
        "committed": "2026-10-12 08:02:11",
        "message": "Add `python -m skycast` and --version",
        "changes": [
            ("write", "skycast/__main__.py", FILES["MAIN_PY"]),
            ("replace", "skycast/cli.py",
             "from skycast.client import WeatherError, current_weather\n",
             "from skycast import __version__\nfrom skycast.client import WeatherError, current_weather\n"),
            ("replace", "skycast/cli.py",
             '    parser = argparse.ArgumentParser(prog="skycast", description="The weather in your terminal.")\n',
             '    parser = argparse.ArgumentParser(prog="skycast", description="The weather in your terminal.")\n'
             '    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")\n'),
        ],
        "visits": [],
        "audio": [],
        "docs": [],
    },
    {
        "key": "springfield",
        "author": "maya",
        "discussed": "2026-10-12 09:10",
        "committed": "2026-10-12 14:50:27",
        "message": 'Pick the right Springfield: accept "City, State" or "City, Country" (#18)\n\n'
        "find_place() asks the geocoder for 10 candidates and keeps those whose\n"
        "admin1, country or country_code match the part after the comma (two-letter\n"
        "US state codes are expanded). The CLI prints the place it chose.",
        "changes": [
            ("write", "skycast/geocode.py", FILES["GEOCODE_V2"]),
            ("replace", "skycast/cli.py",
             '    print(f"{temperature}, wind {wind}, {description}")\n',
             "    if args.city is not None:\n"
             "        print(place.label())\n"
             '    print(f"{temperature}, wind {wind}, {description}")\n'),
        ],
        "visits": [("gh-issue-18", 7), ("term-springfield", 5), ("browser-geocode-json", 4), ("vscode-geocode-v2", 5)],
        "audio": [
            (25, "maya", " Okay so the Springfield thing. The geocoder sorts by population, so Springfield Missouri"
             " always wins. I'll let people write Springfield comma IL and match it against admin1."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "week",
        "author": "maya",
        "discussed": "2026-10-13 08:20",
        "committed": "2026-10-13 15:22:09",
        "message": "Add `skycast week`: daily forecast table for up to 16 days\n\n"
        "New daily_forecast() in client.py and formatting.py with week_table();\n"
        "weather codes move from cli.py to formatting.py. cli.py shares the\n"
        "location arguments between `now` and `week`.",
        "changes": [
            ("append", "skycast/client.py", FILES["DAILY_FORECAST"]),
            ("write", "skycast/formatting.py", FILES["FORMATTING_V1"]),
            ("write", "skycast/cli.py", FILES["CLI_V2"]),
        ],
        "visits": [("slack-priya-week", 5), ("om-docs-daily", 5), ("vscode-formatting", 7), ("term-week-table", 4)],
        "audio": [
            (-45, "priya", " From the user interviews, the thing people ask most is not right now, it's the week"
             " ahead. Like, should I bike on Thursday. Could skycast show a seven day forecast as a little table?"),
            (-44, "maya", " Sure, Open-Meteo has daily aggregates, min and max temperature and max wind per day."
             " I'll add a week command with a table, maybe up to sixteen days since the API allows it."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "scaffold",
        "author": "maya",
        "discussed": "2026-10-14 07:50",
        "committed": "2026-10-14 12:40:55",
        "message": "Scaffold the web dashboard: Vite + React + TypeScript\n\n"
        "npm create vite@latest web -- --template react-ts, trimmed to what we\n"
        "use: strict tsconfig, a placeholder App with a city input, favicon.",
        "changes": [
            ("write", "web/package.json", FILES["PACKAGE_JSON"]),
            ("write", "web/tsconfig.json", FILES["TSCONFIG"]),
            ("write", "web/index.html", FILES["INDEX_HTML"]),
            ("write", "web/vite.config.ts", FILES["VITE_CONFIG"]),
            ("write", "web/src/main.tsx", FILES["MAIN_TSX"]),
            ("write", "web/src/App.tsx", FILES["APP_V1"]),
            ("write", "web/src/styles.css", FILES["STYLES_V1"]),
            ("binary", "web/public/favicon.png", PNG_FAVICON),
        ],
        "visits": [("slack-dashboard-plan", 4), ("term-npm-create-vite", 6), ("vite-docs", 5)],
        "audio": [
            (-15, "sam", " For the dashboard I'd really keep it to one card per city. Big temperature, the wind, and"
             " then the week as a row underneath. I'll have a Figma frame for you tomorrow."),
            (-13, "maya", " Cool. Then today I'll just scaffold it, Vite with the React TypeScript template, strict"
             " mode, and it talks to Open-Meteo straight from the browser. No backend."),
        ],
        "docs": ["docs/architecture.md"],
    },
    {
        "key": "api-ts",
        "author": "maya",
        "discussed": "2026-10-15 07:40",
        "committed": "2026-10-15 11:05:12",
        "message": "Typed client for the forecast and geocoding endpoints\n\n"
        "web/src/api.ts: Place, CurrentWeather, DailyForecast, Forecast types,\n"
        "searchPlaces() and fetchForecast() with AbortSignal support, ApiError\n"
        "for non-2xx answers. timezone=auto as in docs/api-notes.md.",
        "changes": [("write", "web/src/api.ts", FILES["API_TS"])],
        "visits": [("browser-forecast-json", 5), ("vscode-api-ts", 8)],
        "audio": [],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "card",
        "author": "maya",
        "discussed": "2026-10-15 12:10",
        "committed": "2026-10-16 09:30:41",
        "message": "ForecastCard: today's temperature and wind plus the week, with a sun icon\n\n"
        'First real screen of the dashboard, following Sam\'s Figma frame\n"Forecast card / default". '
        "App.tsx fetches the first geocoding match\nand renders the card.",
        "changes": [
            ("write", "web/src/utils/format.js", FILES["FORMAT_JS"]),
            ("write", "web/src/components/ForecastCard.tsx", FILES["FORECAST_CARD_V1"]),
            ("write", "web/src/App.tsx", FILES["APP_V2"]),
            ("binary", "web/public/icons/sun.png", PNG_SUN),
        ],
        "visits": [("figma-card", 6), ("slack-design-card", 4), ("vscode-card", 7), ("chrome-dashboard-card", 3)],
        "audio": [
            (2, "sam", " The frame is called forecast card slash default. Temperature is the hero, forty-eight"
             " pixels, wind next to it in grey, and the seven days as a list with min and max. Sun icon top left."),
            (3, "maya", " Got it, I'll do a ForecastCard component that takes the place and the forecast, and a"
             " little format helper for the degrees and the wind."),
        ],
        "docs": [],
    },
    {
        "key": "timezone",
        "author": "maya",
        "discussed": "2026-10-19 07:35",
        "committed": "2026-10-19 12:25:03",
        "message": "Ask for daily data in the place's own timezone (#21)\n\n"
        "Without timezone=auto Open-Meteo aggregates days in GMT, so Tokyo's\n"
        "week started on the previous local day. daily_forecast() now passes\n"
        "timezone=auto and keeps utc_offset_seconds; week_table() labels\n"
        '"today"/"tomorrow" in the place\'s calendar.',
        "changes": [
            ("replace", "skycast/client.py",
             '            "forecast_days": days,\n',
             '            "forecast_days": days,\n            "timezone": "auto",\n'),
            ("replace", "skycast/client.py",
             '            "code": daily["weather_code"][index],\n',
             '            "code": daily["weather_code"][index],\n'
             '            "utc_offset_seconds": payload.get("utc_offset_seconds", 0),\n'),
            ("replace", "skycast/formatting.py",
             "from datetime import date\n", "from datetime import date, datetime, timedelta, timezone\n"),
            ("replace", "skycast/formatting.py",
             'def week_table(days: list[dict], system: str = "metric") -> str:\n',
             'def week_table(days: list[dict], system: str = "metric", today: date | None = None) -> str:\n'),
            ("replace", "skycast/formatting.py",
             '        weekday = date.fromisoformat(day["date"]).strftime("%a %d %b")\n',
             '        weekday = day_label(day["date"], today)\n'),
            ("append", "skycast/formatting.py", FILES["DAY_LABEL"]),
            ("replace", "skycast/cli.py",
             "from skycast.formatting import describe, week_table\n",
             "from skycast.formatting import describe, place_today, week_table\n"),
            ("replace", "skycast/cli.py",
             "        print(week_table(days, args.units))\n",
             '        today = place_today(days[0]["utc_offset_seconds"]) if days else None\n'
             "        print(week_table(days, args.units, today))\n"),
        ],
        "visits": [
            ("gh-issue-21", 7), ("term-tokyo", 5), ("om-docs-timezone", 4), ("blog-postgres-tz", 3),
            ("vscode-formatting-tz", 5),
        ],
        "audio": [
            (-3, "maya", " Over the weekend someone filed issue twenty-one: the week for Tokyo starts a day late."
             " I'm pretty sure it's because the daily values are in GMT. There's a timezone auto parameter."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "use-forecast",
        "author": "maya",
        "discussed": "2026-10-20 07:45",
        "committed": "2026-10-20 13:35:29",
        "message": "useForecast hook: abort stale requests when the city changes (#24)\n\n"
        'Typing "Paris" after "Berlin" sometimes showed Berlin\'s forecast under\n'
        "Paris: the slower response won. Each city now gets an AbortController\n"
        "that is aborted on change/unmount, and the hook exposes\n"
        "idle/loading/ready/error.",
        "changes": [
            ("write", "web/src/hooks/useForecast.ts", FILES["USE_FORECAST_TS"]),
            ("write", "web/src/App.tsx", FILES["APP_V3"]),
        ],
        "visits": [("gh-issue-24", 6), ("devtools-console-24", 5), ("slack-flicker", 4), ("vscode-use-forecast", 7)],
        "audio": [
            (-12, "priya", " I demoed the dashboard to the design team and when I switched from Berlin to Paris it"
             " showed the Berlin numbers with Paris on top for a second. It looked really broken."),
            (-11, "maya", " Yes, that's issue twenty-four. The old request finishes after the new one. I'll move the"
             " fetching into a useForecast hook with an AbortController, so the stale one gets cancelled."),
        ],
        "docs": [],
    },
    {
        "key": "format-ts",
        "author": "maya",
        "discussed": "2026-10-21 07:40",
        "committed": "2026-10-21 11:02:16",
        "message": "Convert utils/format.js to TypeScript as utils/formatTemperature.ts\n\n"
        "`npm run build` failed with TS7016 (no declaration file for\n"
        "'../utils/format'). Typed the helpers, added formatRange(), and\n"
        "ForecastCard imports the new module.",
        "changes": [
            ("rename", "web/src/utils/format.js", "web/src/utils/formatTemperature.ts"),
            ("write", "web/src/utils/formatTemperature.ts", FILES["FORMAT_TS"]),
            ("replace", "web/src/components/ForecastCard.tsx",
             'from "../utils/format";\n', 'from "../utils/formatTemperature";\n'),
        ],
        "visits": [("slack-ts7016", 4), ("term-ts7016", 5), ("vscode-format-ts", 6)],
        "audio": [],
        "docs": [],
    },
    {
        "key": "wind-arrow",
        "author": "maya",
        "discussed": "2026-10-21 12:20",
        "committed": "2026-10-21 15:48:37",
        "message": "Wind direction arrow on the forecast card (#27)\n\n"
        "Request wind_direction_10m; WindArrow rotates an SVG arrow to point\n"
        "downwind (the API gives the direction the wind comes from) and shows\n"
        "the compass point.",
        "changes": [
            ("write", "web/src/components/WindArrow.tsx", FILES["WIND_ARROW_TSX"]),
            ("replace", "web/src/api.ts",
             "  wind_speed_10m: number;\n  weather_code: number;\n}\n",
             "  wind_speed_10m: number;\n  wind_direction_10m: number;\n  weather_code: number;\n}\n"),
            ("replace", "web/src/api.ts",
             '    current: "temperature_2m,wind_speed_10m,weather_code",\n',
             '    current: "temperature_2m,wind_speed_10m,wind_direction_10m,weather_code",\n'),
            ("replace", "web/src/components/ForecastCard.tsx",
             'from "../utils/formatTemperature";\n',
             'from "../utils/formatTemperature";\nimport { WindArrow } from "./WindArrow";\n'),
            ("replace", "web/src/components/ForecastCard.tsx",
             '        <span className="wind">{formatWind(current.wind_speed_10m)}</span>\n',
             '        <span className="wind">\n'
             "          {formatWind(current.wind_speed_10m)} <WindArrow degrees={current.wind_direction_10m} />\n"
             "        </span>\n"),
        ],
        "visits": [("gh-issue-27", 6), ("figma-wind", 4), ("vscode-wind-arrow", 7)],
        "audio": [
            (5, "sam", " For the wind arrow, please remember the meteo convention. Two seventy means the wind comes"
             " from the west, so the arrow should point east. Everybody gets that backwards."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "json",
        "author": "maya",
        "discussed": "2026-10-22 07:40",
        "committed": "2026-10-22 12:15:48",
        "message": "Add --json for status bars and scripts (#30)\n\n"
        "`skycast now Berlin --json | jq .current.temperature` for waybar and\n"
        "polybar modules. Numbers are converted to the chosen --units; the\n"
        "description is included so bars need no weather-code table.",
        "changes": [
            ("replace", "skycast/cli.py",
             "import argparse\nimport sys\n", "import argparse\nimport json\nimport sys\n"),
            ("replace", "skycast/cli.py",
             "from skycast.formatting import describe, place_today, week_table\n",
             "from skycast.formatting import describe, place_today, to_json_current, to_json_day, week_table\n"),
            ("replace", "skycast/cli.py",
             '"metric (°C, km/h) or imperial (°F, mph)"\n    )\n',
             '"metric (°C, km/h) or imperial (°F, mph)"\n    )\n'
             '    parser.add_argument("--json", action="store_true",'
             ' help="print one JSON document instead of text")\n'),
            ("replace", "skycast/cli.py",
             "    if label:\n        print(label)\n",
             "    if args.json:\n"
             '        document = {"place": label, "latitude": latitude, "longitude": longitude, "units": args.units}\n'
             '        if args.command == "week":\n'
             '            document["days"] = [to_json_day(day, args.units) for day in days]\n'
             "        else:\n"
             '            document["current"] = to_json_current(current, args.units)\n'
             "        print(json.dumps(document, ensure_ascii=False))\n"
             "        return 0\n"
             "    if label:\n"
             "        print(label)\n"),
            ("replace", "skycast/formatting.py",
             "from skycast.units import format_temperature, format_wind\n",
             "from skycast.units import celsius_to_fahrenheit, format_temperature, format_wind, kmh_to_mph\n"),
            ("append", "skycast/formatting.py", FILES["JSON_OUTPUT"]),
        ],
        "visits": [("gh-issue-30", 6), ("waybar-docs", 4), ("term-jq", 4), ("vscode-cli-json", 6)],
        "audio": [],
        "docs": [],
    },
    {
        "key": "rain",
        "author": "maya",
        "discussed": "2026-10-22 12:40",
        "committed": "2026-10-22 15:40:19",
        "message": "Show the chance of rain in the week table\n\n"
        'Request precipitation_probability_max and add a "rain" column ("–"\n'
        "when the API has no value beyond its ensemble horizon); --json carries\n"
        "it as precipitation_probability_max.",
        "changes": [
            ("replace", "skycast/client.py",
             '"temperature_2m_max,temperature_2m_min,wind_speed_10m_max,weather_code"',
             '"temperature_2m_max,temperature_2m_min,wind_speed_10m_max,precipitation_probability_max,weather_code"'),
            ("replace", "skycast/client.py",
             '            "wind": daily["wind_speed_10m_max"][index],\n',
             '            "wind": daily["wind_speed_10m_max"][index],\n'
             '            "rain": daily["precipitation_probability_max"][index],\n'),
            ("replace", "skycast/formatting.py",
             '    """One aligned row per day: weekday, low, high, wind and sky."""\n'
             '    rows = [("day", "low", "high", "wind", "sky")]\n',
             '    """One aligned row per day: weekday, low, high, wind, chance of rain and sky."""\n'
             '    rows = [("day", "low", "high", "wind", "rain", "sky")]\n'),
            ("replace", "skycast/formatting.py",
             '                format_wind(day["wind"], system),\n',
             '                format_wind(day["wind"], system),\n                format_rain(day.get("rain")),\n'),
            ("replace", "skycast/formatting.py",
             '        "wind_speed_max": _wind(day["wind"], system),\n',
             '        "wind_speed_max": _wind(day["wind"], system),\n'
             '        "precipitation_probability_max": day.get("rain"),\n'),
            ("append", "skycast/formatting.py",
             "\n\ndef format_rain(probability: int | None) -> str:\n"
             '    """Chance of precipitation; the API leaves it null beyond its ensemble horizon."""\n'
             "    if probability is None:\n"
             '        return "–"\n'
             '    return f"{probability}%"\n'),
        ],
        "visits": [("slack-priya-rain", 4), ("vscode-formatting-rain", 5)],
        "audio": [
            (-305, "priya", " One more thing from the interviews: in the week view people want the chance of rain."
             " Percent is fine. That's actually the number they decide on, more than the temperature."),
            (-304, "maya", " Makes sense. There's precipitation probability max in the daily variables. I'll add a"
             " rain column to the week table this afternoon, after the JSON output."),
        ],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "debounce",
        "author": "maya",
        "discussed": "2026-10-23 07:50",
        "committed": "2026-10-23 14:02:33",
        "message": "Debounce the city search so typing does not fire a request per key (#33)\n\n"
        'Typing "Berlin" sent six geocoding requests (B, Be, Ber, ...) and\n'
        "racy renders. CitySearch is its own component and App waits until\n"
        "the input has been still for 350 ms (useDebounce) before searching.",
        "changes": [
            ("write", "web/src/hooks/useDebounce.ts", FILES["USE_DEBOUNCE_TS"]),
            ("write", "web/src/components/CitySearch.tsx", FILES["CITY_SEARCH_TSX"]),
            ("write", "web/src/App.tsx", FILES["APP_V4"]),
        ],
        "visits": [("devtools-network-33", 6), ("gh-issue-33", 5), ("vscode-debounce", 6)],
        "audio": [
            (-18, "jonas", " I looked at the network tab on the dashboard. Every key press in the city field sends a"
             " geocoding request. B, B E, B E R. That's six calls for Berlin. Can we debounce that?"),
        ],
        "docs": [],
    },
    {
        "key": "config",
        "author": "maya",
        "discussed": "2026-10-26 08:05",
        "committed": "2026-10-26 13:20:58",
        "message": "Read API URLs and timeout from ~/.config/skycast/config.toml (#36)\n\n"
        "People running their own Open-Meteo (Docker) can point skycast at it:\n"
        "[api] base_url, geocoding_url, timeout; [display] units. A missing\n"
        "file means the public defaults. $SKYCAST_CONFIG overrides the path.",
        "changes": [
            ("write", "skycast/config.py", FILES["CONFIG_PY"]),
            ("replace", "skycast/client.py",
             "from skycast import cache\n", "from skycast import cache\nfrom skycast.config import load_settings\n"),
            ("replace", "skycast/client.py",
             'BASE_URL = "https://api.open-meteo.com/v1/forecast"\nDEFAULT_TIMEOUT = 10.0\n',
             "SETTINGS = load_settings()\nBASE_URL = SETTINGS.base_url\nDEFAULT_TIMEOUT = SETTINGS.timeout\n"),
            ("replace", "skycast/geocode.py",
             'from skycast.client import WeatherError, _get_json\n\n'
             'GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"\n',
             "from skycast.client import SETTINGS, WeatherError, _get_json\n\n"
             "GEOCODING_URL = SETTINGS.geocoding_url\n"),
            ("append", "README.md",
             "\n## Settings\n\n"
             "`~/.config/skycast/config.toml` (or `$SKYCAST_CONFIG`), e.g. for a self-hosted Open-Meteo:\n\n"
             "```toml\n[api]\nbase_url = \"http://localhost:8080/v1/forecast\"\ntimeout = 5\n\n"
             "[display]\nunits = \"imperial\"\n```\n"),
        ],
        "visits": [("gh-issue-36", 6), ("om-docker-docs", 5), ("vscode-config", 7)],
        "audio": [
            (-30, "maya", " I'm on issue thirty-six today. Someone runs Open-Meteo in Docker on their home server and"
             " wants skycast to call that. So a config file in dot config, base URL and timeout."),
        ],
        "docs": ["docs/architecture.md"],
    },
    {
        "key": "release-script",
        "author": "jonas",
        "discussed": None,
        "committed": "2026-10-27 07:12:40",
        "message": "Add scripts/release.py to bump the version and tag a release",
        "changes": [("write", "scripts/release.py", FILES["RELEASE_PY"])],
        "visits": [],
        "audio": [],
        "docs": [],
    },
    {
        "key": "null-wind",
        "author": "maya",
        "discussed": "2026-10-27 08:15",
        "committed": "2026-10-27 13:45:22",
        "message": "Handle null wind speed from the API instead of crashing (#39)\n\n"
        'Open-Meteo returns "wind_speed_10m": null for stations in maintenance\n'
        "and format_wind() raised TypeError: unsupported format string passed to\n"
        'NoneType.__format__. Missing values now print as "n/a" and stay null\n'
        "in --json.",
        "changes": [
            ("replace", "skycast/units.py",
             'def format_temperature(celsius: float, system: str = "metric") -> str:\n',
             'def format_temperature(celsius: float | None, system: str = "metric") -> str:\n'
             "    if celsius is None:\n"
             '        return "n/a"\n'),
            ("replace", "skycast/units.py",
             'def format_wind(kmh: float, system: str = "metric") -> str:\n',
             'def format_wind(kmh: float | None, system: str = "metric") -> str:\n'
             "    if kmh is None:  # stations in maintenance report null wind (#39)\n"
             '        return "n/a"\n'),
            ("replace", "skycast/formatting.py",
             "def _wind(kmh: float, system: str) -> float:\n    return round(",
             "def _wind(kmh: float | None, system: str) -> float | None:\n"
             "    if kmh is None:\n"
             "        return None\n"
             "    return round("),
            ("write", "tests/test_units.py", FILES["TEST_UNITS"]),
        ],
        "visits": [
            ("term-nonetype-traceback", 6), ("gh-issue-39", 6), ("browser-null-json", 3), ("vscode-units-null", 5),
        ],
        "audio": [],
        "docs": ["docs/api-notes.md"],
    },
    {
        "key": "breaker",
        "author": "maya",
        "discussed": "2026-10-28 07:40",
        "committed": "2026-10-28 15:10:06",
        "message": "Open a circuit breaker after repeated 5xx answers (#42)\n\n"
        "During the Oct 27 Open-Meteo outage every waybar tick made 4 attempts.\n"
        "A process-wide CircuitBreaker opens after 5 consecutive 502/503/504\n"
        "failures, fails fast for 30 s, then lets one trial call through\n"
        "(half-open), as docs/retry-policy.md now describes.",
        "changes": [
            ("write", "skycast/breaker.py", FILES["BREAKER_PY"]),
            ("replace", "skycast/client.py",
             "from skycast import cache\n",
             "from skycast import cache\nfrom skycast.breaker import CircuitBreaker, CircuitOpenError\n"),
            ("replace", "skycast/client.py",
             "MAX_BACKOFF = 8.0\n",
             "MAX_BACKOFF = 8.0\nBREAKER = CircuitBreaker(failure_threshold=5, cooldown=30.0)\n"),
            ("replace", "skycast/client.py",
             "    for attempt in range(MAX_ATTEMPTS):\n"
             "        try:\n"
             "            with urllib.request.urlopen(request, timeout=timeout) as response:\n"
             "                return json.load(response)\n"
             "        except urllib.error.HTTPError as exc:\n",
             "    for attempt in range(MAX_ATTEMPTS):\n"
             "        try:\n"
             "            BREAKER.before_call()\n"
             "        except CircuitOpenError as exc:\n"
             "            raise WeatherError(str(exc)) from exc\n"
             "        try:\n"
             "            with urllib.request.urlopen(request, timeout=timeout) as response:\n"
             "                payload = json.load(response)\n"
             "            BREAKER.record_success()\n"
             "            return payload\n"
             "        except urllib.error.HTTPError as exc:\n"
             "            if exc.code in RETRY_STATUSES:\n"
             "                BREAKER.record_failure()\n"),
            ("replace", "tests/test_client.py",
             "from skycast import client\n",
             "from skycast import client\nfrom skycast.breaker import CircuitBreaker, CircuitOpenError\n"),
            ("replace", "tests/test_client.py",
             "@pytest.fixture\ndef no_sleep",
             "@pytest.fixture(autouse=True)\n"
             "def fresh_breaker(monkeypatch):\n"
             '    """The breaker is process-wide: every test starts with a closed one."""\n'
             '    monkeypatch.setattr(client, "BREAKER", CircuitBreaker())\n'
             "\n\n"
             "@pytest.fixture\ndef no_sleep"),
            ("append", "tests/test_client.py", FILES["TEST_BREAKER"]),
        ],
        "visits": [
            ("gh-issue-42", 7), ("statuspage-outage", 4), ("fowler-breaker", 5), ("slack-payments-503b", 3),
            ("vscode-breaker", 7), ("term-pytest-breaker", 3),
        ],
        "audio": [
            (-10, "maya", " Yesterday's Open-Meteo outage was fun. Every status bar retried four times per tick,"
             " so we basically hammered them. For issue forty-two I'm adding a circuit breaker on top of the retries."),
            (-9, "jonas", " Makes sense. Open after five failures, stay open thirty seconds, then half-open with one"
             " trial call? That's what we did for the payments gateway too."),
        ],
        "docs": ["docs/retry-policy.md"],
    },
    {
        "key": "dark-mode",
        "author": "maya",
        "discussed": "2026-10-29 08:00",
        "committed": "2026-10-29 13:30:50",
        "message": "Dark mode that follows the system and can be toggled (#45)\n\n"
        "useTheme() starts from the saved choice or prefers-color-scheme, sets\n"
        "data-theme on <html> and remembers the choice in localStorage;\n"
        "ThemeToggle sits in the header.",
        "changes": [
            ("write", "web/src/hooks/useTheme.ts", FILES["USE_THEME_TS"]),
            ("write", "web/src/components/ThemeToggle.tsx", FILES["THEME_TOGGLE_TSX"]),
            ("write", "web/src/App.tsx", FILES["APP_V5"]),
            ("append", "web/src/styles.css", FILES["DARK_STYLES"]),
        ],
        "visits": [("gh-issue-45", 6), ("slack-dark-mode", 4), ("dribbble-dark-admin", 3), ("vscode-theme", 6)],
        "audio": [
            (-20, "sam", " The dark mode request keeps coming up, issue forty-five. Can it just follow the system"
             " setting, prefers color scheme, and have a small toggle in the header that remembers the choice?"),
        ],
        "docs": [],
    },
]

# --------------------------------------------------------------------------------------------------------------
# Screens, as screenpipe's OCR reads them.
# --------------------------------------------------------------------------------------------------------------

CHROME = "Google Chrome"
CODE = "Code"
TERM = "iTerm2"
SLACK = "Slack"
GH = "https://github.com/skycast-dev/skycast"
VSCODE_STATUS = "main*  ⊗ 0 ⚠ 0   Ln @LN@, Col @COL@   Spaces: 4   UTF-8   LF   {lang}"


def _vscode(path: str, code: str, lang: str = "Python 3.11.7 ('.venv': venv)") -> str:
    explorer = (
        "EXPLORER\nSKYCAST\n> skycast\n> tests\n> web\n.gitignore\npyproject.toml\nREADME.md\n"
    )
    tab, breadcrumbs = path.rsplit("/", 1)[-1], path.replace("/", " > ")
    return f"{explorer}{tab}  ×\n{breadcrumbs}\n{code}\n{VSCODE_STATUS.format(lang=lang)}"


TS_STATUS = "TypeScript JSX"

SCREENS = {
    # ---- init
    "om-docs-forecast": {
        "app": CHROME, "window": "Weather Forecast API | Open-Meteo.com", "url": "https://open-meteo.com/en/docs",
        "topics": ["init"],
        "text": "Open-Meteo  Features  Pricing  API Docs  GitHub\nWeather Forecast API\n"
        "Seamless integration of high-resolution weather models with up to 16 days forecast\n"
        "Location  Latitude 52.52  Longitude 13.41  Timezone  Not set (GMT+0)\n"
        "Current Weather  Temperature (2 m)  Wind Speed (10 m)  Weather code  Relative Humidity (2 m)\n"
        "Settings  Temperature Unit Celsius  Wind Speed Unit Km/h  Precipitation Unit Millimeter\n"
        "API URL (Open in new tab or copy this URL into your application)\n"
        "https://api.open-meteo.com/v1/forecast?latitude=52.52&longitude=13.41&current=temperature_2m,"
        "wind_speed_10m,weather_code\nFree for non-commercial use. No API key required.\n"
        "WMO Weather interpretation codes (WW)  0 Clear sky  1, 2, 3 Mainly clear, partly cloudy, and overcast",
    },
    "vscode-client-v1": {
        "app": CODE, "window": "skycast/client.py — skycast", "topics": ["init"],
        "text": _vscode("skycast/client.py", FILES["CLIENT_V1"].split("class WeatherError")[0]
                        + "def current_weather(latitude: float, longitude: float) -> dict:\n"
                        '    """Current temperature (°C), wind speed (km/h) and WMO weather code at a point."""'),
    },
    "term-first-run": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["init"],
        "text": "(.venv) maya@mbp skycast % pip install -e .\nSuccessfully installed skycast-0.1.0\n"
        "(.venv) maya@mbp skycast % skycast now --lat 52.52 --lon 13.41\n11.4 °C, wind 14 km/h, partly cloudy\n"
        "(.venv) maya@mbp skycast % skycast now --lat 48.85 --lon 2.35\n13.0 °C, wind 9 km/h, overcast\n"
        "(.venv) maya@mbp skycast % git status\nOn branch main\nUntracked files:\n  skycast/  pyproject.toml "
        " README.md\n"
        "(.venv) maya@mbp skycast % @TIME@",
    },
    # ---- geocode
    "om-docs-geocoding": {
        "app": CHROME, "window": "Geocoding API | Open-Meteo.com", "url": "https://open-meteo.com/en/docs/geocoding-api",
        "topics": ["geocode", "springfield"],
        "text": "Open-Meteo  API Docs\nGeocoding API\nSearch locations globally in any language. "
        "Provide latitude and longitude for cities and postal codes.\n"
        "Search  Berlin  Language English  Number of results 10\n"
        "API URL  https://geocoding-api.open-meteo.com/v1/search?name=Berlin&count=10&language=en&format=json\n"
        "Parameter  name  String  required  String to search for. An empty string or only 1 character will return"
        " an empty result. 2 characters will only match exact matching locations.\n"
        "count  Integer  10  The number of search results to return. Up to 100 results can be retrieved.\n"
        "Results: id, name, latitude, longitude, elevation, timezone, country_code, country, admin1, population\n"
        "Results are ordered by population.",
    },
    "term-lat-required": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["geocode"],
        "text": "(.venv) maya@mbp skycast % skycast now Berlin\nusage: skycast now [-h] --lat LAT --lon LON\n"
        "skycast now: error: the following arguments are required: --lat, --lon\n"
        "(.venv) maya@mbp skycast % curl -s 'https://geocoding-api.open-meteo.com/v1/search?name=Berlin&count=1' | jq"
        " '.results[0] | {name, country, latitude, longitude}'\n"
        '{\n  "name": "Berlin",\n  "country": "Germany",\n  "latitude": 52.52437,\n  "longitude": 13.41053\n}\n'
        "(.venv) maya@mbp skycast % @TIME@",
    },
    "vscode-geocode": {
        "app": CODE, "window": "skycast/geocode.py — skycast", "topics": ["geocode"],
        "text": _vscode("skycast/geocode.py", FILES["GEOCODE_V1"]),
    },
    # ---- units (#3)
    "gh-issue-3": {
        "app": CHROME, "window": "Support imperial units (°F, mph) · Issue #3 · skycast-dev/skycast",
        "url": f"{GH}/issues/3", "topics": ["units"],
        "text": FILES["GH_HEADER"] +
            "Support imperial units (°F, mph) #3\nOpen  tomasz-b opened this issue on Oct 6 · 2"
                            " comments\n"
        "tomasz-b commented on Oct 6\nHi! Great little tool. I'm in Chicago and my brain does not do Celsius before"
        " coffee. Could `skycast now` take a `--units imperial` flag so temperatures are shown in °F and wind in mph?\n"
        "maya-l commented on Oct 7\nMakes sense. I'd keep the API call metric and convert in a small units module,"
        " so a cached answer works for both. Wind: km/h -> mph is / 1.609344.\n"
        "Assignees maya-l  Labels enhancement  good first issue  Milestone 0.2",
    },
    "slack-units": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["units"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nPriya Raman  9:58 AM\nSaw issue #3 about Fahrenheit — we have a lot of US"
        " sign-ups from the HN post. Is --units a big change?\nMaya Lindqvist  10:04 AM\nNo, small: a units.py with"
        " celsius_to_fahrenheit and kmh_to_mph, and a --units metric|imperial flag on `skycast now`. Today.\n"
        "Priya Raman  10:05 AM\n🙌\nMessage #skycast",
    },
    "vscode-units": {
        "app": CODE, "window": "skycast/units.py — skycast", "topics": ["units"],
        "text": _vscode("skycast/units.py", FILES["UNITS_V1"]),
    },
    # ---- retry (#12)
    "term-503-traceback": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["retry"],
        "text": "(.venv) maya@mbp skycast % skycast now Berlin\nTraceback (most recent call last):\n"
        '  File "/Users/maya/code/skycast/skycast/cli.py", line 49, in main\n'
        "    current = current_weather(latitude, longitude)\n"
        '  File "/Users/maya/code/skycast/skycast/client.py", line 33, in current_weather\n'
        '    payload = _get_json(f"{BASE_URL}?{query}")\n'
        '  File "/Users/maya/code/skycast/skycast/client.py", line 20, in _get_json\n'
        "    with urllib.request.urlopen(request, timeout=timeout) as response:\n"
        '  File "/opt/homebrew/Cellar/python@3.11/3.11.7/lib/python3.11/urllib/request.py", line 643, in'
        " http_error_default\n    raise HTTPError(req.full_url, code, msg, hdrs, fp)\n"
        "urllib.error.HTTPError: HTTP Error 503: Service Unavailable\n(.venv) maya@mbp skycast % @TIME@",
    },
    "gh-issue-12": {
        "app": CHROME, "window": "Client does not retry on 503 · Issue #12 · skycast-dev/skycast",
        "url": f"{GH}/issues/12", "topics": ["retry", "retry-after"],
        "text": FILES["GH_HEADER"] +
            "Client does not retry on 503 #12\nOpen  maya-l opened this issue on Oct 8 · 3 comments\n"
        "maya-l commented on Oct 8\nDuring Open-Meteo's deploy window (around 07:00 UTC) api.open-meteo.com"
        " answers 503 Service Unavailable for a few seconds. skycast crashes with urllib.error.HTTPError: HTTP Error"
        " 503 and a traceback.\nExpected: retry 502/503/504 a few times with exponential backoff, then a one-line"
        " error. Don't retry 4xx.\njonas-o commented on Oct 8\n+1, and add jitter so that all the waybar instances"
        " don't retry in lockstep. Also respect Retry-After if they send it.\n"
        "maya-l commented on Oct 8\nPlan in docs/retry-policy.md: MAX_ATTEMPTS = 4, full jitter, cap 8 s.\n"
        "Labels bug  network  Milestone 0.2",
    },
    "slack-skycast-503": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["retry"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nMaya Lindqvist  9:41 AM\nskycast blew up with HTTP Error 503 twice this"
        " morning, Open-Meteo deploys around 9 our time. Filed #12 — client does not retry on 503.\n"
        "Jonas Okafor  9:44 AM\nexponential backoff + jitter pls 🙏 and only for 5xx\n"
        "Maya Lindqvist  9:45 AM\nyep: 502/503/504 and connection errors, 4 attempts max, WeatherError after that"
        " instead of a traceback\nMessage #skycast",
    },
    "vscode-client-retry": {
        "app": CODE, "window": "skycast/client.py — skycast", "topics": ["retry"],
        "text": _vscode("skycast/client.py",
                        "MAX_ATTEMPTS = 4\nRETRY_STATUSES = frozenset({502, 503, 504})\nBACKOFF_BASE = 0.5\n"
                        "MAX_BACKOFF = 8.0\n\ndef backoff_delay(attempt: int) -> float:\n"
                        "    ceiling = min(MAX_BACKOFF, BACKOFF_BASE * 2**attempt)\n"
                        "    return random.uniform(0, ceiling)\n\ndef _get_json(url: str, timeout: float ="
                        " DEFAULT_TIMEOUT) -> dict:\n    for attempt in range(MAX_ATTEMPTS):\n        try:\n"
                        "            with urllib.request.urlopen(request, timeout=timeout) as response:\n"
                        "                return json.load(response)\n        except urllib.error.HTTPError as exc:\n"
                        "            if exc.code not in RETRY_STATUSES or attempt == MAX_ATTEMPTS - 1:"),
    },
    "slack-payments-503": {
        "app": SLACK, "window": "payments-oncall (Channel) - Skycast - Slack", "topics": [], "hard_for": ["retry"],
        "text": FILES["SLACK_SIDEBAR"] + "# payments-oncall\nDana Whitfield  9:12 AM\n🔥 Stripe webhook deliveries to"
        " /hooks/stripe are failing with 503 Service Unavailable since the 09:00 deploy of billing-api\n"
        "Rafael Costa  9:15 AM\nStripe retries webhooks for 3 days with its own backoff, no need to replay by hand."
        " Rolling back billing-api to v2.41.3\nDana Whitfield  9:31 AM\nrollback done, 503s gone, incident"
        " INC-2291 resolved\nMessage #payments-oncall",
    },
    "gh-requests-retry": {
        "app": CHROME, "window": "Retry with status_forcelist is not applied to POST · Issue #6487 · psf/requests",
        "url": "https://github.com/psf/requests/issues/6487", "topics": [], "hard_for": ["retry"],
        "text": "psf / requests  Public\nCode  Issues 211  Pull requests 67  Actions\n"
        "Retry with status_forcelist is not applied to POST #6487\nClosed  ghost opened this issue · 4 comments\n"
        "I mounted an HTTPAdapter(max_retries=Retry(total=5, backoff_factor=1, status_forcelist=[502, 503, 504]))"
        " but POST requests that get 503 are not retried.\nsigmavirus24 commented\nThis is urllib3 behaviour:"
        " allowed_methods defaults to idempotent methods only. Pass allowed_methods=None or include POST.\n"
        "Closed as not planned.",
    },
    # ---- retry-after (#12, tests)
    "term-pytest-retry-after-fail": {
        "app": TERM, "window": "~/code/skycast — pytest — 132×38", "topics": ["retry-after"],
        "text": "(.venv) maya@mbp skycast % pytest tests/test_client.py -q\n....F.\n"
        "=================================== FAILURES ===================================\n"
        "__________________________ test_uses_retry_after_header __________________________\n"
        "    def test_uses_retry_after_header(monkeypatch, no_sleep):\n>       assert no_sleep == [3.0]\n"
        "E       assert [0.3741859287393101] == [3.0]\nE         At index 0 diff: 0.3741859287393101 != 3.0\n"
        "tests/test_client.py:71: AssertionError\n=========================== short test summary info"
        " ============================\nFAILED tests/test_client.py::test_uses_retry_after_header - assert"
        " [0.3741859287393101] == [3.0]\n1 failed, 5 passed in 0.08s",
    },
    "mdn-retry-after": {
        "app": CHROME, "window": "Retry-After - HTTP | MDN",
        "url": "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Retry-After", "topics": ["retry-after"],
        "text": "MDN Web Docs  References  HTTP  HTTP headers\nRetry-After\nThe HTTP Retry-After response header"
        " indicates how long the user agent should wait before making a follow-up request. There are three main"
        " cases this header is used: In a 503 Service Unavailable response, this indicates how long the service"
        " is expected to be unavailable. In a 429 Too Many Requests response, this indicates how long to wait"
        " before making a new request.\nSyntax\nRetry-After: <http-date>\nRetry-After: <delay-seconds>\n"
        "Examples  Retry-After: Wed, 21 Oct 2015 07:28:00 GMT  Retry-After: 120\nSpecifications  RFC 9110 10.2.3",
    },
    "vscode-test-client": {
        "app": CODE, "window": "tests/test_client.py — skycast", "topics": ["retry-after"],
        "text": _vscode("tests/test_client.py",
                        FILES["TEST_CLIENT_V1"].split("def test_gives_up")[0].split("@pytest.fixture")[1]
                        + FILES["TEST_CLIENT_V1"].split("def test_uses_retry_after_header")[1][:420]),
    },
    "term-pytest-green": {
        "app": TERM, "window": "~/code/skycast — pytest — 132×38", "topics": ["retry-after"],
        "text": "(.venv) maya@mbp skycast % pytest -q\n......                                                 "
        "                  [100%]\n6 passed in 0.07s\n(.venv) maya@mbp skycast % git diff --stat\n"
        " skycast/client.py    | 21 ++++++++++++++++++++-\n tests/test_client.py | 84 ++++++++++++++++++++++\n"
        " 2 files changed, 104 insertions(+), 1 deletion(-)\n(.venv) maya@mbp skycast % @TIME@",
    },
    # ---- cache (#15)
    "gh-issue-15": {
        "app": CHROME, "window": "429 Too Many Requests when skycast runs in a waybar loop · Issue #15 ·"
                                 " skycast-dev/skycast",
        "url": f"{GH}/issues/15", "topics": ["cache"],
        "text": FILES["GH_HEADER"] +
            "429 Too Many Requests when skycast runs in a waybar loop #15\nOpen  tomasz-b opened this"
        " issue on Oct 9 · 2 comments\ntomasz-b commented on Oct 9\nI have skycast in my waybar custom module with"
        ' "interval": 30. After a few hours: skycast: 429 Too Many Requests from api.open-meteo.com.'
        " Could skycast cache the answer for a few minutes? The forecast doesn't change every 30 seconds.\n"
        "maya-l commented on Oct 9\nGood point — their models update every 15 minutes at most. I'll cache responses"
        " on disk (~/.cache/skycast) for 10 minutes, keyed by URL.\nLabels enhancement  network",
    },
    "slack-waybar": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["cache"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nJonas Okafor  2:51 PM\nif the cache is a file per URL, write it atomically"
        " (tmp + os.replace), tomasz runs it from waybar AND tmux at the same time\nMaya Lindqvist  2:53 PM\nyes,"
        " sha256 of the URL as file name, TTL 600 s, corrupt file = cache miss\nJonas Okafor  2:53 PM\n👍 and respect"
        " XDG_CACHE_HOME\nMessage #skycast",
    },
    "so-django-cache": {
        "app": CHROME, "window": "python - How to cache Django querysets in Redis with a TTL? - Stack Overflow",
        "url": "https://stackoverflow.com/questions/41268395/how-to-cache-django-querysets-in-redis-with-a-ttl",
        "topics": [], "hard_for": ["cache"],
        "text": "stackoverflow  Questions  Tags  Users\nHow to cache Django querysets in Redis with a TTL?\n"
        "Asked 7 years ago  Viewed 38k times\nI want to cache an expensive queryset for 10 minutes. "
        "cache.set(key, list(qs), timeout=600) works locally but in production the key is evicted immediately.\n"
        "Answer (142): Check maxmemory-policy on your Redis; with allkeys-lru and a full instance, new keys are"
        " evicted at once. Also use django-redis and make the cache key include the query parameters.\n"
        "python  django  caching  redis",
    },
    "vscode-cache": {
        "app": CODE, "window": "skycast/cache.py — skycast", "topics": ["cache"],
        "text": _vscode("skycast/cache.py", FILES["CACHE_V1"]),
    },
    # ---- springfield (#18)
    "gh-issue-18": {
        "app": CHROME, "window": "`skycast now Springfield` always picks Springfield, MO · Issue #18 ·"
                                 " skycast-dev/skycast",
        "url": f"{GH}/issues/18", "topics": ["springfield"],
        "text": FILES["GH_HEADER"] +
            "`skycast now Springfield` always picks Springfield, MO #18\nOpen  lindsey-k opened this"
        " issue on Oct 11 · 1 comment\nlindsey-k commented on Oct 11\nI live in Springfield, Illinois. `skycast now"
        " Springfield` gives me the weather for Springfield, Missouri and there is no way to choose. "
        "`skycast now \"Springfield, IL\"` says: skycast: no place called 'Springfield, IL'\n"
        "maya-l commented on Oct 12\nThe geocoder orders results by population. Plan: accept \"City, State\" /"
        " \"City, Country\", filter on admin1 / country_code, and print which place was chosen.\nLabels bug",
    },
    "term-springfield": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["springfield"],
        "text": "(.venv) maya@mbp skycast % curl -s 'https://geocoding-api.open-meteo.com/v1/search?name=Springfield"
        "&count=10' | jq -r '.results[] | [.name, .admin1, .country_code, .population] | @tsv'\n"
        "Springfield\tMissouri\tUS\t169176\nSpringfield\tMassachusetts\tUS\t155929\nSpringfield\tIllinois\tUS\t114394\n"
        "Springfield\tOregon\tUS\t62256\nSpringfield\tOhio\tUS\t58662\n(.venv) maya@mbp skycast % skycast now"
        " \"Springfield, IL\"\nskycast: no place called 'Springfield, IL'\n(.venv) maya@mbp skycast % @TIME@",
    },
    "browser-geocode-json": {
        "app": CHROME, "window": "geocoding-api.open-meteo.com/v1/search?name=Springfield&count=10",
        "url": "https://geocoding-api.open-meteo.com/v1/search?name=Springfield&count=10", "topics": ["springfield"],
        "text": 'Pretty-print\n{"results":[{"id":4409896,"name":"Springfield","latitude":37.21533,'
        '"longitude":-93.29824,'
        '"country_code":"US","admin1":"Missouri","timezone":"America/Chicago","population":169176,"country":"United'
        ' States"},{"id":4951788,"name":"Springfield","latitude":42.10148,"longitude":-72.58981,"admin1":'
        '"Massachusetts","population":155929},{"id":4250542,"name":"Springfield","latitude":39.80172,"longitude":'
        '-89.64371,"country_code":"US","admin1":"Illinois","timezone":"America/Chicago","population":114394}]}',
    },
    "vscode-geocode-v2": {
        "app": CODE, "window": "skycast/geocode.py — skycast", "topics": ["springfield"],
        "text": _vscode("skycast/geocode.py", FILES["GEOCODE_V2"].split("@dataclass")[0].split("GEOCODING_URL")[1]
                        + FILES["GEOCODE_V2"].split("def _matches")[1]),
    },
    # ---- week
    "slack-priya-week": {
        "app": SLACK, "window": "Priya Raman (DM) - Skycast - Slack", "topics": ["week"],
        "text": FILES["SLACK_SIDEBAR"] +
            "Priya Raman\nPriya Raman  9:35 AM\nsummary from the 6 user interviews: #1 ask is"
        " \"what's the week like\" — e.g. should I bike Thursday. A 7-day forecast table in the terminal would be"
        " perfect. min/max temp, wind, sky\nMaya Lindqvist  9:40 AM\nok! `skycast week Berlin` with a table, daily"
        " aggregates from Open-Meteo, --days up to 16\nMessage Priya Raman",
    },
    "om-docs-daily": {
        "app": CHROME, "window": "Weather Forecast API | Open-Meteo.com", "url": "https://open-meteo.com/en/docs#daily",
        "topics": ["week", "rain"],
        "text": "Open-Meteo  API Docs\nDaily Weather Variables\nMaximum Temperature (2 m)  temperature_2m_max\n"
        "Minimum Temperature (2 m)  temperature_2m_min\nPrecipitation Probability Max  precipitation_probability_max\n"
        "Maximum Wind Speed (10 m)  wind_speed_10m_max\nDominant Wind Direction (10 m)  wind_direction_10m_dominant\n"
        "Weather code  weather_code\nForecast days  1  3  7 (default)  14  16\n"
        "API URL  https://api.open-meteo.com/v1/forecast?latitude=52.52&longitude=13.41&daily=temperature_2m_max,"
        "temperature_2m_min,wind_speed_10m_max,weather_code&forecast_days=7",
    },
    "vscode-formatting": {
        "app": CODE, "window": "skycast/formatting.py — skycast", "topics": ["week"],
        "text": _vscode("skycast/formatting.py", FILES["FORMATTING_V1"].split("def describe")[1]),
    },
    "term-week-table": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["week"],
        "text": "(.venv) maya@mbp skycast % python -m skycast week Berlin\nBerlin, Land Berlin, Germany\n"
        "day         low      high     wind     sky\nTue 13 Oct  6.2 °C   12.9 °C  18 km/h  partly cloudy\n"
        "Wed 14 Oct  7.9 °C   14.1 °C  22 km/h  rain showers\nThu 15 Oct  5.1 °C   11.0 °C  31 km/h  rain\n"
        "Fri 16 Oct  3.8 °C   10.4 °C  15 km/h  mainly clear\nSat 17 Oct  4.4 °C   12.2 °C  11 km/h  clear sky\n"
        "(.venv) maya@mbp skycast % @TIME@",
    },
    # ---- scaffold
    "slack-dashboard-plan": {
        "app": SLACK, "window": "skycast-design (Channel) - Skycast - Slack", "topics": ["scaffold", "card"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast-design\nSam Ito  9:20 AM\ndashboard v0: one card per city, big temperature,"
        " wind, then the week as a row. Figma tomorrow\nMaya Lindqvist  9:26 AM\nI'll scaffold web/ today: Vite +"
        " React + TypeScript, talking to Open-Meteo from the browser, no backend\nPriya Raman  9:27 AM\nlove it\n"
        "Message #skycast-design",
    },
    "term-npm-create-vite": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["scaffold"],
        "text": "maya@mbp skycast % npm create vite@latest web -- --template react-ts\n\nScaffolding project in"
        " /Users/maya/code/skycast/web...\n\nDone. Now run:\n\n  cd web\n  npm install\n  npm run dev\n\n"
        "maya@mbp skycast % cd web && npm install\nadded 214 packages, and audited 215 packages in 9s\n"
        "maya@mbp web % npm run dev\n  VITE v5.4.9  ready in 312 ms\n  ➜  Local:   http://localhost:5173/\n"
        "  ➜  Network: use --host to expose",
    },
    "vite-docs": {
        "app": CHROME, "window": "Getting Started | Vite", "url": "https://vite.dev/guide/", "topics": ["scaffold"],
        "text": "Vite  Guide  Config  Plugins  Resources\nGetting Started\nScaffolding Your First Vite Project\n"
        "Compatibility Note: Vite requires Node.js version 18+ or 20+.\n$ npm create vite@latest\n"
        "You can also directly specify the project name and the template you want to use via additional command"
        " line options. For example, to scaffold a Vite + React project, run:\n"
        "npm create vite@latest my-react-app -- --template react-ts\n"
        "Supported template presets include: vanilla, vanilla-ts, vue, vue-ts, react, react-ts, react-swc-ts",
    },
    # ---- api.ts
    "browser-forecast-json": {
        "app": CHROME,
        "window": "api.open-meteo.com/v1/forecast?latitude=52.52&longitude=13.41&current=temperature_2m,wind_s...",
        "url": "https://api.open-meteo.com/v1/forecast?latitude=52.52&longitude=13.41&current=temperature_2m,"
        "wind_speed_10m,weather_code&daily=temperature_2m_max,temperature_2m_min,weather_code&timezone=auto",
        "topics": ["api-ts"],
        "text": 'Pretty-print\n{"latitude":52.52,"longitude":13.419998,"generationtime_ms":0.0680685043334961,'
        '"utc_offset_seconds":7200,"timezone":"Europe/Berlin","timezone_abbreviation":"CEST","elevation":38.0,'
        '"current_units":{"time":"iso8601","interval":"seconds","temperature_2m":"°C","wind_speed_10m":"km/h",'
        '"weather_code":"wmo code"},"current":{"time":"2026-10-15T09:30","interval":900,"temperature_2m":9.8,'
        '"wind_speed_10m":12.2,"weather_code":3},"daily":{"time":["2026-10-15","2026-10-16","2026-10-17"],'
        '"temperature_2m_max":[13.1,14.6,12.0],"temperature_2m_min":[6.4,7.7,5.9],"weather_code":[3,61,2]}}',
    },
    "vscode-api-ts": {
        "app": CODE, "window": "web/src/api.ts — skycast", "topics": ["api-ts"],
        "text": _vscode("web/src/api.ts",
                        FILES["API_TS"].split("export class ApiError")[0].split("export interface Place")[1]
                        + FILES["API_TS"].split("export async function fetchForecast")[1], TS_STATUS),
    },
    # ---- card
    "figma-card": {
        "app": "Figma", "window": "skycast dashboard – Figma", "topics": ["card"],
        "text": "Figma  Drafts / skycast dashboard\nLayers  Assets\nForecast card / default\n  header\n   "
                " icon/sun 32\n"
        "    city  Berlin\n    country  Germany\n  now\n    temperature  11°  Inter Bold 48\n    wind  14 km/h  Inter"
        " Regular 16 #6B7280\n  days  Mon 6° 12°  Tue 7° 14°  Wed 5° 11°\nDesign  Prototype  Inspect\nFrame 360 × 420"
        "  Auto layout  vertical  gap 16  padding 24  radius 16  fill #FFFFFF  stroke #E5E7EB",
    },
    "slack-design-card": {
        "app": SLACK, "window": "skycast-design (Channel) - Skycast - Slack", "topics": ["card"],
        "text": FILES["SLACK_SIDEBAR"] + "# skycast-design\nSam Ito  2:05 PM\nFigma link for the forecast card:"
        " figma.com/file/skycast-dashboard — frame \"Forecast card / default\". Sun icon exported as 32px PNG in"
        " the assets panel\nMaya Lindqvist  2:09 PM\nperfect, building ForecastCard.tsx now, min/max per day as a"
        " list\nMessage #skycast-design",
    },
    "vscode-card": {
        "app": CODE, "window": "web/src/components/ForecastCard.tsx — skycast", "topics": ["card"],
        "text": _vscode("web/src/components/ForecastCard.tsx", FILES["FORECAST_CARD_V1"], TS_STATUS),
    },
    "chrome-dashboard-card": {
        "app": CHROME, "window": "skycast", "url": "http://localhost:5173/", "topics": ["card"],
        "text": "skycast\nThe weather, without the ads.\nBerlin\nBerlin Germany\n10°  12 km/h\nThu 6° 13°\nFri 8° 15°\n"
        "Sat 6° 12°\nSun 4° 10°\nMon 5° 11°\nTue 7° 12°\nWed 6° 11°\nlocalhost:5173  ForecastCard first render",
    },
    # ---- timezone (#21)
    "gh-issue-21": {
        "app": CHROME, "window": "Forecast for Tokyo starts a day late · Issue #21 · skycast-dev/skycast",
        "url": f"{GH}/issues/21", "topics": ["timezone"],
        "text": FILES["GH_HEADER"] +
            "Forecast for Tokyo starts a day late #21\nOpen  kenji-w opened this issue on Oct 17 · 2"
        " comments\nkenji-w commented on Oct 17\nAt 08:00 in Tokyo on Saturday, `skycast week Tokyo` starts with"
        " Friday and the min/max temperatures look shifted by half a day.\nmaya-l commented on Oct 19\nThe daily"
        " aggregation happens in GMT unless we pass timezone=auto. Will fix in daily_forecast() and label"
        " today/tomorrow in the place's own calendar (utc_offset_seconds).\nLabels bug",
    },
    "term-tokyo": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["timezone"],
        "text": "(.venv) maya@mbp skycast % python -m skycast week Tokyo --days 3\nTokyo, Tokyo, Japan\n"
        "day         low      high     wind     sky\nSun 18 Oct  14.1 °C  20.3 °C  12 km/h  overcast\n"
        "Mon 19 Oct  15.0 °C  21.7 °C  9 km/h   mainly clear\nTue 20 Oct  13.2 °C  19.4 °C  14 km/h  rain\n"
        "(.venv) maya@mbp skycast % TZ=Asia/Tokyo date\nMon Oct 19 16:41:07 JST 2026\n"
        "(.venv) maya@mbp skycast % @TIME@",
    },
    "om-docs-timezone": {
        "app": CHROME, "window": "Weather Forecast API | Open-Meteo.com", "url": "https://open-meteo.com/en/docs#timezone",
        "topics": ["timezone"],
        "text": "Open-Meteo  API Docs\nParameter  timezone  String  GMT\nIf timezone is set, all timestamps are"
                " returned"
        " as local-time and data is returned starting at 00:00 local-time. Any time zone name from the time zone"
        " database is supported. If auto is set as a time zone, the coordinates will be automatically resolved to"
        " the local time zone. For multiple coordinates, a comma separated list of timezones can be specified.\n"
        "Note: daily aggregations require a timezone to be set.\nutc_offset_seconds  timezone_abbreviation",
    },
    "blog-postgres-tz": {
        "app": CHROME, "window": "Don't store local times in Postgres timestamp columns – Crunchy Data Blog",
        "url": "https://www.crunchydata.com/blog/postgres-timestamp-vs-timestamptz", "topics": [],
        "hard_for": ["timezone"],
        "text": "Crunchy Data  Blog\nDon't store local times in Postgres timestamp columns\nMost time zone bugs we see"
        " come from timestamp without time zone. Postgres happily stores 2026-03-29 02:30 even though that local"
        " time never happened in Europe/Berlin. Use timestamptz, keep the server in UTC, and convert at the edge:"
        " SELECT created_at AT TIME ZONE 'Asia/Tokyo'. Daily reports grouped with date_trunc('day', created_at)"
        " are off by one for every user east of Greenwich unless you set the session time zone.",
    },
    "vscode-formatting-tz": {
        "app": CODE, "window": "skycast/formatting.py — skycast", "topics": ["timezone"],
        "text": _vscode("skycast/formatting.py", FILES["DAY_LABEL"].strip()),
    },
    # ---- use-forecast (#24)
    "gh-issue-24": {
        "app": CHROME, "window": "Dashboard shows the previous city's forecast after switching · Issue #24 ·"
        " skycast-dev/skycast", "url": f"{GH}/issues/24", "topics": ["use-forecast"],
        "text": FILES["GH_HEADER"] +
            "Dashboard shows the previous city's forecast after switching #24\nOpen  priya-r opened"
        " this issue on Oct 19 · 1 comment\npriya-r commented on Oct 19\nSteps: type Berlin, wait, then type Paris."
        " The card says Paris but shows Berlin's temperature and week for a moment, sometimes for good.\n"
        "maya-l commented on Oct 20\nRace: the effect in App.tsx never cancels the previous searchPlaces /"
        " fetchForecast chain, so whichever answer arrives last wins. Moving this into a useForecast hook that"
        " aborts with an AbortController on cleanup.\nLabels bug  dashboard",
    },
    "devtools-console-24": {
        "app": CHROME, "window": "DevTools - localhost:5173/", "url": "devtools://devtools/bundled/devtools_app.html",
        "topics": ["use-forecast"],
        "text": "Elements  Console  Sources  Network  Performance\nDefault levels  2 issues\n"
        "[vite] connected.\nfetchForecast Berlin  resolved after 1843 ms\nfetchForecast Paris  resolved after 212 ms\n"
        "Warning: Can't perform a React state update on a component that hasn't mounted yet.\n"
        "    at App (App.tsx:10:25)\nsetForecast(Berlin) called after setPlace(Paris)  App.tsx:14\n"
        "Uncaught (in promise) TypeError: Failed to fetch  api.ts:47",
    },
    "slack-flicker": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["use-forecast"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nPriya Raman  9:21 AM\nfiled #24 — during the design review the card showed"
        " Berlin numbers under Paris 😬\nJonas Okafor  9:30 AM\nclassic useEffect race, you need an AbortController"
        " and to ignore results after cleanup\nMaya Lindqvist  9:33 AM\non it, pulling the fetching out of App.tsx"
        " into hooks/useForecast.ts with a status union (idle/loading/ready/error)\nMessage #skycast",
    },
    "vscode-use-forecast": {
        "app": CODE, "window": "web/src/hooks/useForecast.ts — skycast", "topics": ["use-forecast"],
        "text": _vscode("web/src/hooks/useForecast.ts", FILES["USE_FORECAST_TS"], TS_STATUS),
    },
    # ---- format-ts
    "term-ts7016": {
        "app": TERM, "window": "~/code/skycast/web — npm run build — 132×38", "topics": ["format-ts"],
        "text": "maya@mbp web % npm run build\n\n> skycast-web@0.1.0 build\n> tsc -b && vite build\n\n"
        "src/components/ForecastCard.tsx:2:62 - error TS7016: Could not find a declaration file for module"
        " '../utils/format'. '/Users/maya/code/skycast/web/src/utils/format.js' implicitly has an 'any' type.\n\n"
        "2 import { formatTemperature, formatWind, weekdayName } from \"../utils/format\";\n\n"
        "Found 1 error.\nmaya@mbp web % @TIME@",
    },
    "slack-ts7016": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["format-ts"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nJonas Okafor  9:38 AM\nweb build is red on main: TS7016 Could not find a"
        " declaration file for module '../utils/format'\nMaya Lindqvist  9:41 AM\nmy bad, format.js is the last .js"
        " file from the scaffold. I'll convert it to TypeScript — renaming it formatTemperature.ts while I'm at it\n"
        "Message #skycast",
    },
    "vscode-format-ts": {
        "app": CODE, "window": "web/src/utils/formatTemperature.ts — skycast", "topics": ["format-ts"],
        "text": _vscode("web/src/utils/formatTemperature.ts", FILES["FORMAT_TS"], "TypeScript"),
    },
    # ---- wind-arrow (#27)
    "gh-issue-27": {
        "app": CHROME, "window": "Show wind direction on the forecast card · Issue #27 · skycast-dev/skycast",
        "url": f"{GH}/issues/27", "topics": ["wind-arrow"],
        "text": FILES["GH_HEADER"] +
            "Show wind direction on the forecast card #27\nOpen  sam-ito opened this issue on Oct 20 ·"
        " 2 comments\nsam-ito commented on Oct 20\nCyclists care about where the wind comes from. Design: small arrow"
        " next to the wind speed, rotated, plus the compass point (NW). Figma: Forecast card / wind.\n"
        "maya-l commented on Oct 21\nNeeds wind_direction_10m in the current variables. Note the API gives the"
        " direction the wind comes FROM, so the arrow has to point downwind (+180°).\nLabels enhancement  dashboard",
    },
    "figma-wind": {
        "app": "Figma", "window": "skycast dashboard – Figma", "topics": ["wind-arrow"],
        "text": "Figma  Drafts / skycast dashboard\nLayers  Assets\nForecast card / wind\n  now\n    temperature 11°\n"
        "    wind  14 km/h\n    wind-arrow  20 × 20  rotate 225°\n    compass  SW  Inter Medium 14\n"
        "Comment  Sam Ito: arrow shows where the wind GOES. 270° (from west) → arrow points east\nDesign  Prototype",
    },
    "vscode-wind-arrow": {
        "app": CODE, "window": "web/src/components/WindArrow.tsx — skycast", "topics": ["wind-arrow"],
        "text": _vscode("web/src/components/WindArrow.tsx", FILES["WIND_ARROW_TSX"], TS_STATUS),
    },
    # ---- json (#30)
    "gh-issue-30": {
        "app": CHROME, "window": "Machine-readable output (--json) for status bars · Issue #30 · skycast-dev/skycast",
        "url": f"{GH}/issues/30", "topics": ["json"],
        "text": FILES["GH_HEADER"] +
            "Machine-readable output (--json) for status bars #30\nOpen  tomasz-b opened this issue on"
        " Oct 21 · 1 comment\ntomasz-b commented on Oct 21\nMy waybar module parses `skycast now` text with sed,"
        " which breaks when the wording changes. Could there be a --json flag? Ideally numbers in the chosen units"
        " plus a description, e.g. {\"current\": {\"temperature\": 51.3, \"description\": \"overcast\"}}\n"
        "maya-l commented on Oct 22\nYes, for both now and week.\nLabels enhancement  cli",
    },
    "waybar-docs": {
        "app": CHROME, "window": "Module: Custom · Alexays/Waybar Wiki · GitHub",
        "url": "https://github.com/Alexays/Waybar/wiki/Module:-Custom", "topics": ["json"],
        "text": "Alexays / Waybar  Wiki\nModule: Custom\nexec  string  The path to the script, which should return the"
        " contents.\nreturn-type  string  See return-type\ninterval  integer  The interval (in seconds) in which the"
        " information gets polled.\nreturn-type: json — the script must output a JSON object like"
        ' {"text": "$text", "tooltip": "$tooltip", "class": "$class", "percentage": $percentage}\n'
        'Example: "custom/weather": { "exec": "skycast now --json | jq -c ...", "interval": 600 }',
    },
    "term-jq": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["json"],
        "text": "(.venv) maya@mbp skycast % skycast now Berlin --json --units imperial | jq .\n{\n"
        '  "place": "Berlin, Land Berlin, Germany",\n  "latitude": 52.52437,\n  "longitude": 13.41053,\n'
        '  "units": "imperial",\n  "current": {\n    "temperature": 51.3,\n    "wind_speed": 8.7,\n'
        '    "weather_code": 3,\n    "description": "overcast"\n  }\n}\n(.venv) maya@mbp skycast % @TIME@',
    },
    "vscode-cli-json": {
        "app": CODE, "window": "skycast/cli.py — skycast", "topics": ["json"],
        "text": _vscode("skycast/cli.py", "def main(argv: list[str] | None = None) -> int:\n"
                        "    args = build_parser().parse_args(argv)\n    ...\n    if args.json:\n"
                        '        document = {"place": label, "latitude": latitude, "longitude": longitude,'
                        ' "units": args.units}\n        if args.command == "week":\n'
                        '            document["days"] = [to_json_day(day, args.units) for day in days]\n'
                        "        else:\n"
                        '            document["current"] = to_json_current(current, args.units)\n'
                        "        print(json.dumps(document, ensure_ascii=False))\n        return 0"),
    },
    # ---- rain
    "slack-priya-rain": {
        "app": SLACK, "window": "Priya Raman (DM) - Skycast - Slack", "topics": ["rain"],
        "text": FILES["SLACK_SIDEBAR"] +
            "Priya Raman\nPriya Raman  2:38 PM\nreminder from standup: chance of rain in the week"
        " table 🌧 people decide on that number more than on the temperature\nMaya Lindqvist  2:41 PM\nprecipitation"
        "_probability_max from the daily variables, shown as a percent column. null beyond the ensemble horizon,"
        " I'll print a dash there\nMessage Priya Raman",
    },
    "vscode-formatting-rain": {
        "app": CODE, "window": "skycast/formatting.py — skycast", "topics": ["rain"],
        "text": _vscode("skycast/formatting.py",
                        'def week_table(days: list[dict], system: str = "metric", today: date | None = None) -> str:\n'
                        '    """One aligned row per day: weekday, low, high, wind, chance of rain and sky."""\n'
                        '    rows = [("day", "low", "high", "wind", "rain", "sky")]\n'
                        '                format_wind(day["wind"], system),\n               '
                        ' format_rain(day.get("rain")),'
                        "\n\ndef format_rain(probability: int | None) -> str:\n    if probability is None:\n"
                        '        return "–"\n    return f"{probability}%"'),
    },
    # ---- debounce (#33)
    "devtools-network-33": {
        "app": CHROME, "window": "DevTools - localhost:5173/", "url": "devtools://devtools/bundled/devtools_app.html",
        "topics": ["debounce"],
        "text": "Elements  Console  Sources  Network  Performance\nFilter  Fetch/XHR\nName  Status  Type  Size  Time\n"
        "search?name=B&count=5&language=en&format=json  200  fetch  0.3 kB  188 ms\n"
        "search?name=Be&count=5&language=en&format=json  200  fetch  1.1 kB  201 ms\n"
        "search?name=Ber&count=5&language=en&format=json  200  fetch  1.2 kB  176 ms\n"
        "search?name=Berl&count=5&language=en&format=json  200  fetch  1.2 kB  240 ms\n"
        "search?name=Berli&count=5&language=en&format=json  200  fetch  1.0 kB  163 ms\n"
        "search?name=Berlin&count=5&language=en&format=json  200  fetch  1.0 kB  171 ms\n"
        "12 requests  7.9 kB transferred",
    },
    "gh-issue-33": {
        "app": CHROME, "window": "City search fires a geocoding request on every keystroke · Issue #33 ·"
        " skycast-dev/skycast", "url": f"{GH}/issues/33", "topics": ["debounce"],
        "text": FILES["GH_HEADER"] +
            "City search fires a geocoding request on every keystroke #33\nOpen  jonas-o opened this"
        " issue on Oct 22 · 1 comment\njonas-o commented on Oct 22\nTyping \"Berlin\" in the dashboard sends 6"
        " requests to geocoding-api.open-meteo.com (B, Be, Ber, Berl, Berli, Berlin) plus a forecast request for"
        " each. Please debounce the input (300-400 ms).\nmaya-l commented on Oct 23\nWill add a useDebounce hook"
        " and a CitySearch component.\nLabels performance  dashboard",
    },
    "vscode-debounce": {
        "app": CODE, "window": "web/src/hooks/useDebounce.ts — skycast", "topics": ["debounce"],
        "text": _vscode("web/src/hooks/useDebounce.ts", FILES["USE_DEBOUNCE_TS"], "TypeScript"),
    },
    # ---- config (#36)
    "gh-issue-36": {
        "app": CHROME, "window": "Support a self-hosted Open-Meteo instance · Issue #36 · skycast-dev/skycast",
        "url": f"{GH}/issues/36", "topics": ["config"],
        "text": FILES["GH_HEADER"] +
            "Support a self-hosted Open-Meteo instance #36\nOpen  r-haas opened this issue on Oct 24 ·"
        " 2 comments\nr-haas commented on Oct 24\nI run open-meteo in Docker on my home server (port 8080). skycast"
        " has the API URL hard-coded in client.py (BASE_URL). Could it read the base URL (and a timeout) from a"
        " config file?\nmaya-l commented on Oct 26\nPlan: ~/.config/skycast/config.toml with [api] base_url,"
        " geocoding_url, timeout and [display] units; $SKYCAST_CONFIG overrides the path; tomllib, no new"
        " dependency.\nLabels enhancement  cli",
    },
    "om-docker-docs": {
        "app": CHROME, "window": "open-meteo/docs/getting-started.md at main · open-meteo/open-meteo",
        "url": "https://github.com/open-meteo/open-meteo/blob/main/docs/getting-started.md", "topics": ["config"],
        "text": "open-meteo / open-meteo\nGetting started: running your own weather API\n"
        "docker run -d --rm -v open-meteo-data:/app/data -p 8080:8080 ghcr.io/open-meteo/open-meteo\n"
        "docker run -it --rm -v open-meteo-data:/app/data ghcr.io/open-meteo/open-meteo sync dwd_icon"
        " temperature_2m,wind_speed_10m\nThe API is then available at http://127.0.0.1:8080/v1/forecast?latitude="
        "47.1&longitude=8.4&hourly=temperature_2m",
    },
    "vscode-config": {
        "app": CODE, "window": "skycast/config.py — skycast", "topics": ["config"],
        "text": _vscode("skycast/config.py", FILES["CONFIG_PY"].split("@dataclass")[1]),
    },
    # ---- null-wind (#39)
    "term-nonetype-traceback": {
        "app": TERM, "window": "~/code/skycast — -zsh — 132×38", "topics": ["null-wind"],
        "text": "(.venv) maya@mbp skycast % skycast now Reykjavik\nReykjavik, Capital Region, Iceland\n"
        "Traceback (most recent call last):\n  File \"/Users/maya/code/skycast/skycast/cli.py\", line 83, in main\n"
        '    wind = format_wind(current["wind_speed_10m"], args.units)\n'
        '  File "/Users/maya/code/skycast/skycast/units.py", line 24, in format_wind\n'
        '    return f"{kmh:.0f} km/h"\nTypeError: unsupported format string passed to NoneType.__format__\n'
        "(.venv) maya@mbp skycast % @TIME@",
    },
    "gh-issue-39": {
        "app": CHROME, "window": "TypeError: unsupported format string passed to NoneType.__format__ · Issue #39 ·"
        " skycast-dev/skycast", "url": f"{GH}/issues/39", "topics": ["null-wind"],
        "text": FILES["GH_HEADER"] +
            "TypeError: unsupported format string passed to NoneType.__format__ #39\nOpen  tomasz-b"
        " opened this issue on Oct 26 · 1 comment\ntomasz-b commented on Oct 26\nSince yesterday my waybar shows"
        " nothing; running by hand gives a traceback in format_wind. The API returns \"wind_speed_10m\": null for"
        " my location.\nmaya-l commented on Oct 27\nStations in maintenance report null. format_wind and"
        " format_temperature should print n/a, and --json should keep null.\nLabels bug",
    },
    "browser-null-json": {
        "app": CHROME, "window": "api.open-meteo.com/v1/forecast?latitude=64.14&longitude=-21.94&current=...",
        "url": "https://api.open-meteo.com/v1/forecast?latitude=64.14&longitude=-21.94&current=temperature_2m,"
        "wind_speed_10m,weather_code", "topics": ["null-wind"],
        "text": 'Pretty-print\n{"latitude":64.14,"longitude":-21.94,"generationtime_ms":0.031,"utc_offset_seconds":0,'
        '"timezone":"GMT","current_units":{"time":"iso8601","temperature_2m":"°C","wind_speed_10m":"km/h"},'
        '"current":{"time":"2026-10-27T08:15","interval":900,"temperature_2m":3.9,"wind_speed_10m":null,'
        '"weather_code":3}}',
    },
    "vscode-units-null": {
        "app": CODE, "window": "skycast/units.py — skycast", "topics": ["null-wind"],
        "text": _vscode("skycast/units.py", 'def format_wind(kmh: float | None, system: str = "metric") -> str:\n'
                        "    if kmh is None:  # stations in maintenance report null wind (#39)\n"
                        '        return "n/a"\n    if system == "imperial":\n'
                        '        return f"{kmh_to_mph(kmh):.0f} mph"\n    return f"{kmh:.0f} km/h"'),
    },
    # ---- breaker (#42)
    "gh-issue-42": {
        "app": CHROME, "window": "Stop hammering the API during an outage · Issue #42 · skycast-dev/skycast",
        "url": f"{GH}/issues/42", "topics": ["breaker"],
        "text": FILES["GH_HEADER"] +
            "Stop hammering the API during an outage #42\nOpen  maya-l opened this issue on Oct 27 · 2"
        " comments\nmaya-l commented on Oct 27\nDuring today's Open-Meteo outage (~40 min of 503s) every skycast run"
        " made 4 attempts (#12 retries), so status bars multiplied the load. Proposal: a circuit breaker in"
        " client.py — open after 5 consecutive 5xx, fail fast for 30 s, then half-open with one trial call.\n"
        "jonas-o commented on Oct 27\nSame pattern as the payments gateway client. Keep the state process-wide.\n"
        "Labels network  reliability",
    },
    "statuspage-outage": {
        "app": CHROME, "window": "Open-Meteo Status - Elevated error rates on forecast API",
        "url": "https://status.open-meteo.com/incidents/2026-10-27", "topics": ["breaker"],
        "text": "Open-Meteo Status\nElevated error rates on forecast API\nResolved - Error rates are back to normal."
        " Oct 27, 11:52 UTC\nMonitoring - A fix has been deployed; 503 responses are decreasing. Oct 27, 11:31 UTC\n"
        "Investigating - api.open-meteo.com returns 503 Service Unavailable for a large share of requests. We see"
        " heavy retry traffic from clients. Oct 27, 11:09 UTC\nAffected components: Forecast API (Major Outage)",
    },
    "fowler-breaker": {
        "app": CHROME, "window": "Circuit Breaker - Martin Fowler", "url": "https://martinfowler.com/bliki/CircuitBreaker.html",
        "topics": ["breaker"],
        "text": "martinfowler.com  Refactoring  Agile  Architecture\nCircuit Breaker\nThe basic idea behind the"
        " circuit breaker is very simple. You wrap a protected function call in a circuit breaker object, which"
        " monitors for failures. Once the failures reach a certain threshold, the circuit breaker trips, and all"
        " further calls to the circuit breaker return with an error, without the protected call being made at all.\n"
        "half-open state: after a timeout the breaker lets a trial call through; success resets it to closed.",
    },
    "slack-payments-503b": {
        "app": SLACK, "window": "payments-oncall (Channel) - Skycast - Slack", "topics": [], "hard_for": ["breaker"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# payments-oncall\nRafael Costa  10:02 AM\nAdyen sandbox is returning 503s again, our"
        " circuit breaker on the gateway client opened at 09:58 and checkout shows the fallback banner\n"
        "Dana Whitfield  10:05 AM\nthreshold is 20 failures / 60 s cool-down, working as designed. I'll ping Adyen"
        " support, INC-2317\nMessage #payments-oncall",
    },
    "vscode-breaker": {
        "app": CODE, "window": "skycast/breaker.py — skycast", "topics": ["breaker"],
        "text": _vscode("skycast/breaker.py", FILES["BREAKER_PY"].split("class CircuitBreaker:")[1]),
    },
    "term-pytest-breaker": {
        "app": TERM, "window": "~/code/skycast — pytest — 132×38", "topics": ["breaker"],
        "text": "(.venv) maya@mbp skycast % pytest tests/test_client.py -v -k breaker\n"
        "tests/test_client.py::test_breaker_opens_after_threshold_and_fails_fast PASSED [ 25%]\n"
        "tests/test_client.py::test_breaker_half_open_after_cooldown_then_closes_on_success PASSED [ 50%]\n"
        "tests/test_client.py::test_breaker_failure_while_half_open_opens_again PASSED [ 75%]\n"
        "tests/test_client.py::test_get_json_fails_fast_while_open PASSED [100%]\n"
        "4 passed, 6 deselected in 0.03s\n(.venv) maya@mbp skycast % @TIME@",
    },
    # ---- dark mode (#45)
    "gh-issue-45": {
        "app": CHROME, "window": "Dark mode for the dashboard · Issue #45 · skycast-dev/skycast",
        "url": f"{GH}/issues/45", "topics": ["dark-mode"],
        "text": FILES["GH_HEADER"] +
            "Dark mode for the dashboard #45\nOpen  sam-ito opened this issue on Oct 28 · 2 comments\n"
        "sam-ito commented on Oct 28\nThe white card is blinding at night. Follow the OS setting"
        " (prefers-color-scheme) by default, with a toggle in the header that remembers the choice. Dark palette:"
        " background #11151C, card #1B212C, text #E5E9F0.\nmaya-l commented on Oct 29\nuseTheme hook + ThemeToggle"
        " button, data-theme on <html>, localStorage.\nLabels enhancement  dashboard",
    },
    "slack-dark-mode": {
        "app": SLACK, "window": "skycast-design (Channel) - Skycast - Slack", "topics": ["dark-mode"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast-design\nSam Ito  10:12 AM\ndark palette for #45 is in Figma, page \"Dark\"."
        " Toggle: sun/moon glyph top right of the header\nMaya Lindqvist  10:15 AM\nstarting with the saved choice,"
        " else prefers-color-scheme, then data-theme=\"dark\" on the root so CSS does the rest\nMessage"
        " #skycast-design",
    },
    "dribbble-dark-admin": {
        "app": CHROME, "window": "Admin Dashboard Dark Mode by Orbit Studio | Dribbble",
        "url": "https://dribbble.com/shots/21934410-admin-dashboard-dark-mode", "topics": [], "hard_for": ["dark-mode"],
        "text": "Dribbble  Explore  Hire a Designer  Find Jobs\nAdmin Dashboard Dark Mode\nOrbit Studio  Follow\n"
        "Revenue $48,210  Orders 1,284  Conversion 3.2%\nSales analytics dark theme with neon accents, toggle between"
        " light and dark in the sidebar\n1.2k likes  214 saves  #dashboard #darkmode #saas #ui",
    },
    "vscode-theme": {
        "app": CODE, "window": "web/src/hooks/useTheme.ts — skycast", "topics": ["dark-mode"],
        "text": _vscode("web/src/hooks/useTheme.ts", FILES["USE_THEME_TS"], "TypeScript"),
    },
}

# Screens that explain no commit: the rest of a working day. They appear in the daily routine below.
DISTRACTORS = {
    "gmail-inbox": {
        "app": CHROME, "window": "Inbox (@UNREAD@) - maya@skycast.dev - Skycast Mail", "url": "https://mail.google.com/mail/u/0/#inbox",
        "text": "Gmail  Compose\nInbox @UNREAD@\nStarred  Snoozed  Sent  Drafts\nGitHub  [skycast-dev/skycast]"
                " Weekly digest:"
        " 6 issues opened, 4 closed\nHR Team  Open enrolment for 2027 benefits closes Nov 15\nFigma  Sam Ito mentioned"
        " you in skycast dashboard\nAWS Billing  Your October invoice is available\nMeetup Berlin Python  PyBerlin"
        " #58: talks announced\nLinkedIn  You appeared in 14 searches this week",
    },
    "calendar-week": {
        "app": CHROME, "window": "Google Calendar - Week of October 2026", "url": "https://calendar.google.com/calendar/u/0/r/week",
        "text": "Calendar  Today  October 2026\nMON  TUE  WED  THU  FRI\n09:30 Standup (Zoom)  09:30 Standup  09:30"
        " Standup  09:30 Standup  09:30 Standup\n12:00 Lunch  14:00 Design review skycast  16:00 1:1 Priya\n"
        "17:30 Climbing  Thu 19:00 PyBerlin meetup  Fri 16:00 Demo day",
    },
    "hn-front": {
        "app": CHROME, "window": "Hacker News", "url": "https://news.ycombinator.com/",
        "text": "Hacker News  new | past | comments | ask | show | jobs | submit\n1. The hidden cost of microservices"
        " (2026) (example.dev) 412 points by pg_fan 6 hours ago | 288 comments\n2. Show HN: I built a mechanical"
        " keyboard from recycled parts 233 points\n3. Why SQLite is so great for embedded systems 198 points\n"
        "4. The European Space Agency's new launcher passes final tests 176 points\n5. Ask HN: How do you"
        " organise your personal notes? 141 points | 203 comments",
    },
    "bbc-weather": {
        "app": CHROME, "window": "London - BBC Weather", "url": "https://www.bbc.co.uk/weather/2643743",
        "text": "BBC Weather  London\nToday  Light rain and a gentle breeze  14° 9°  Wind 13 mph SW\nTonight  Cloudy"
        " with drizzle later\nTomorrow  Sunny intervals  15° 8°\nEnvironmental summary  Sunrise 07:21 Sunset 17:48"
        "  UV index Low  Pollen Low  Pollution Low\nForecast provided by MeteoGroup  Last updated at @TIME@",
    },
    "youtube-talk": {
        "app": CHROME, "window": "PyCon US 2025 - Rethinking Packaging in Python - YouTube",
        "url": "https://www.youtube.com/watch?v=q9pR3vZtqMo",
        "text": "YouTube  Search\nPyCon US 2025 - Rethinking Packaging in Python\n1.4K views  Streamed 5 months ago\n"
        "PyCon US  82K subscribers  Subscribe\nwheels, uv, lock files and the road to PEP 751. Chapters: 0:00 Intro"
        " 4:12 History of setup.py 17:40 Lock files 31:05 Q&A\nUp next  Writing fast Python with Rust extensions",
    },
    "spotify": {
        "app": "Spotify", "window": "Spotify Premium",
        "text": "Home  Search  Your Library\nNow playing  Deep Focus  Playlist by Spotify\nWeightless — Marconi Union"
        "  2:14 / 8:09\nUp next: Intro — The xx  ·  Avril 14th — Aphex Twin  ·  An Ending (Ascent) — Brian Eno\n"
        "Shuffle  Repeat  Lyrics  Queue  Connect to a device",
    },
    "news-article": {
        "app": CHROME, "window": "Berlin transport strike: what commuters need to know - The Local Germany",
        "url": "https://www.thelocal.de/20261014/berlin-transport-strike-what-commuters-need-to-know",
        "text": "The Local Germany  News  Berlin\nBerlin transport strike: what commuters need to know\nThe Verdi union"
        " has called on BVG workers to strike on Thursday from 3am to midday. U-Bahn, trams and most buses will not"
        " run; S-Bahn trains operated by Deutsche Bahn are not affected. Commuters should expect crowded S-Bahn"
        " services and heavy traffic on the A100.",
    },
    "twitter": {
        "app": CHROME, "window": "Home / X", "url": "https://x.com/home",
        "text": "Home  For you  Following\n@simonw  Just shipped a new release of my LLM command-line tool with support"
        " for plugins that add tools · 2h\n@b0rk  new zine: how DNS works, 16 pages of comics · 5h\n@hynek  Reminder"
        " that your Docker images should not run as root · 7h\nWhat's happening  #PyBerlin  Champions League",
    },
    "linkedin": {
        "app": CHROME, "window": "(@UNREAD@) Feed | LinkedIn", "url": "https://www.linkedin.com/feed/",
        "text": "LinkedIn  Home  My Network  Jobs  Messaging  Notifications @UNREAD@\nStart a post\nAnna Berg ·"
                " 2nd\nExcited"
        " to share that I've started a new position as Staff Engineer at Northwind!\nRecommended for you: Senior"
        " Backend Engineer (Python, Kafka) · Berlin · 180 applicants",
    },
    "amazon-order": {
        "app": CHROME, "window": "Your Orders - Amazon.de", "url": "https://www.amazon.de/gp/your-account/order-history",
        "text": "amazon.de  Your Orders\nOrder placed 24 October 2026  Total €89.99  Ship to Maya Lindqvist\nArriving"
        " Tuesday  Logitech MX Keys Mini keyboard, graphite\nTrack package  Return or replace items  Write a product"
        " review\nBuy it again: USB-C cable 2 m, AAA batteries",
    },
    "acme-issue-12": {
        "app": CHROME, "window": "Footer links broken on mobile Safari · Issue #12 · maya-l/personal-site",
        "url": "https://github.com/maya-l/personal-site/issues/12", "hard_for": ["retry"],
        "text": "maya-l / personal-site  Public\nCode  Issues 3  Pull requests 0\nFooter links broken on mobile Safari"
        " #12\nOpen  maya-l opened this issue on Sep 30 · 0 comments\nOn iOS 18 Safari the footer links (Mastodon,"
        " GitHub, RSS) are not tappable: the cookie banner overlay has pointer-events: auto even when hidden. Retry"
        " after removing the overlay z-index.\nLabels bug",
    },
}

# Most weekdays Maya also reads mail, news and music: (time UTC, screens to pick from, how many).
DAILY_ROUTINE = [
    ("06:52", ["gmail-inbox", "calendar-week", "hn-front", "news-article"], 1),
    ("10:35", ["hn-front", "bbc-weather", "youtube-talk", "spotify", "twitter", "news-article"], 1),
    ("15:52", ["gmail-inbox", "spotify", "linkedin", "acme-issue-12", "amazon-order", "twitter"], 1),
]
ROUTINE_SKIP = 0.45  # chance that a routine slot is skipped on a given day (meetings, focus time)

# Short frames (under 100 characters) that screenpipe captures on app switches: (app, window, text).
JUNK = [
    ("Finder", "Finder", "Finder  File  Edit  View  Go  Window  Help"),
    ("Finder", "Downloads", "Downloads  Today  skycast-logo.fig  invoice-2026-10.pdf"),
    ("Control Center", "Control Center", "Wi-Fi  Bluetooth  AirDrop  Focus  Display  Sound"),
    ("Notification Center", "Notification Center", "Calendar  Standup in 5 minutes  Zoom"),
    ("loginwindow", "", "Maya Lindqvist  Enter Password"),
    ("Slack", "Slack", "Slack  Loading workspace…"),
    ("Code", "Welcome — skycast", "Welcome  Start  New File…  Open…  Clone Git Repository…"),
    ("zoom.us", "Zoom Meeting", "Zoom Meeting  Mute  Stop Video  Share Screen  Participants 4"),
]

# Audio that explains no commit: (time UTC, voice, text). Whisper writes "Thank you." on silence.
AMBIENT_AUDIO = [
    ("2026-10-05 10:41", "jonas", " Are you coming to lunch? We're going to the Vietnamese place on the corner."),
    ("2026-10-05 14:02", "maya", " Thank you."),
    ("2026-10-06 12:30", "priya", " Quick reminder that the all-hands moved to Thursday at four. Hannah wants everyone"
     " there because of the office move, so please don't book anything else."),
    ("2026-10-07 07:31", "jonas", " Morning everyone. Can you hear me? I think my microphone was muted the whole"
     " time."),
    ("2026-10-07 15:10", "maya", " Thank you."),
    ("2026-10-08 11:02", "priya", " Thank you."),
    ("2026-10-09 10:44", "sam", " Did anyone else get the email about the new expense tool? I tried to submit my"
     " train ticket and it asked me for a cost centre I've never heard of."),
    ("2026-10-12 07:33", "jonas", " Sorry, I was on the other call with the payments team. Their gateway was down"
     " again this morning, so I'm a bit late. Nothing from my side for skycast today."),
    ("2026-10-13 14:40", "maya", " Thank you."),
    ("2026-10-14 10:50", "sam", " The coffee machine on the third floor is broken again, just so you know. Use the"
     " one in the kitchen next to the meeting rooms."),
    ("2026-10-16 14:00", "priya", " Okay, can you see my screen? Let me share the roadmap for next quarter. So the"
     " big theme is onboarding, and then pricing for the team plan."),
    ("2026-10-16 14:01", "priya", " Okay, can you see my screen? Let me share the roadmap for next quarter. So the"
     " big theme is onboarding, and then pricing for the team plan."),
    ("2026-10-19 10:38", "jonas", " I'm going climbing tonight at the Berta Block, if anyone wants to join, we'll be"
     " there from six thirty. They reset the whole bouldering wall last week."),
    ("2026-10-20 15:30", "maya", " Thank you."),
    ("2026-10-22 10:40", "sam", " Does anyone know a good place for a team dinner for twelve people? Somewhere in"
     " Kreuzberg, ideally with vegetarian options, for the end of November."),
    ("2026-10-23 15:00", "priya", " So that's it for demo day. Great work everyone. Next week the focus is the"
     " newsletter and the landing page copy, I'll send the notes around."),
    ("2026-10-26 09:02", "jonas", " Did your clocks change correctly on the weekend? My calendar showed the standup"
     " an hour early this morning, I think it's still on summer time."),
    ("2026-10-27 12:10", "maya", " Thank you."),
    ("2026-10-28 11:45", "sam", " I'll be out on Friday, I have a doctor's appointment in the morning and then I'm"
     " taking the afternoon off. Ping me on my phone if it's urgent."),
    ("2026-10-29 15:20", "priya", " Thank you."),
    ("2026-10-30 09:40", "jonas", " Last thing, the office will be closed on the eleventh for the move. Please take"
     " your laptops home on the tenth and don't leave anything on the desks."),
]

# --------------------------------------------------------------------------------------------------------------
# Maya's coding-assistant log (conversations/assistant.jsonl): one conversation per line, as `collect` reads them.
# Line MALFORMED_AT is a conversation the assistant crashed while writing (cut off mid-line); one conversation was
# logged twice (a client retry), one reply was thumbed down and one is too short to teach anything.
# --------------------------------------------------------------------------------------------------------------

MALFORMED_AT = 9  # 1-based line of the truncated conversation
MALFORMED_LINE = (
    '{"timestamp": "2026-10-27T09:18:40Z", "messages": [{"role": "user", "content": "Open-Meteo is returning 503'
    ' for everything this morning. Is skycast going to hammer it?"}, {"role": "assistant", "content": "Each run'
    ' makes at most 4 attempts, with backoff capped at 8 s, but a waybar loop that runs every'
)

CONVERSATIONS = [
    {
        "timestamp": "2026-10-06T08:12:03Z",
        "feedback": "positive",
        "messages": [
            {"role": "user", "content": "The Open-Meteo geocoding API returns several results for a name. Which one"
             " does find_place() pick in skycast/geocode.py, and what happens when there is none?"},
            {"role": "assistant", "content": "find_place() asks the geocoder for the name and takes the first"
             " result. Open-Meteo orders results by population, so \"Springfield\" gives Springfield, Missouri.\n\n"
             "When nothing matches, the answer has no `results` key at all (not an empty list), so the code"
             " checks `payload.get(\"results\")` and raises `WeatherError(f\"no place called {name!r}\")`, which"
             " the CLI prints as one sentence and exits 1."},
        ],
    },
    {
        "timestamp": "2026-10-08T14:40:51Z",
        "feedback": "thumbs_up",
        "messages": [
            {"role": "system", "content": "You are a coding assistant for the skycast repository (Python CLI in"
             " skycast/, React dashboard in web/). Answer briefly and point at files."},
            {"role": "user", "content": "Which HTTP status codes does _get_json() retry, and how long does it wait"
             " between attempts?"},
            {"role": "assistant", "content": "It retries 502, 503 and 504 (`RETRY_STATUSES`) and connection"
             " errors, with at most `MAX_ATTEMPTS = 4` attempts. Before each retry it waits"
             " `uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2**attempt))` seconds: exponential backoff with full"
             " jitter, capped at 8 s. 4xx answers are never retried (docs/retry-policy.md explains why: a 400 fails"
             " the same way again and retrying a 429 makes rate limiting worse)."},
        ],
    },
    {
        "timestamp": "2026-10-09T10:05:27Z",
        "messages": [
            {"role": "user", "content": "How should a test fake urlopen so that the first call raises a 503 and"
             " the second one succeeds?"},
            {"role": "assistant", "content": "Monkeypatch `urllib.request.urlopen` with a function that pops"
             " answers from a list, and patch `time.sleep` so the test does not wait:\n\n```python\ndef"
             " test_retries_503_then_succeeds(monkeypatch):\n    answers = [http_error(503),"
             " FakeResponse(b'{\"ok\": true}')]\n\n    def fake_urlopen(request, timeout):\n        answer ="
             " answers.pop(0)\n        if isinstance(answer, Exception):\n            raise answer\n        return"
             " answer\n\n    monkeypatch.setattr(client.urllib.request, \"urlopen\", fake_urlopen)\n"
             "    monkeypatch.setattr(client.time, \"sleep\", lambda seconds: None)\n    assert"
             " client._get_json(\"https://example.test\") == {\"ok\": True}\n    assert answers == []\n```\n\n"
             "`FakeResponse` subclasses `io.BytesIO` and adds `__enter__`/`__exit__` so it works in the `with`"
             " block."},
        ],
    },
    {
        "timestamp": "2026-10-13T16:22:10Z",
        "feedback": "positive",
        "messages": [
            {"role": "user", "content": "Where does skycast cache API answers, and for how long?"},
            {"role": "assistant", "content": "In `$XDG_CACHE_HOME/skycast`, which defaults to `~/.cache/skycast`."
             " Each answer is a JSON file named after the first 32 hex digits of the SHA-256 of the request URL,"
             " and `cache.load()` ignores files older than `DEFAULT_TTL = 600` seconds. Open-Meteo updates its"
             " models at most every 15 minutes, so ten minutes loses nothing. Writes go to a temp file and"
             " `os.replace()`, so two skycast processes never read half a file."},
        ],
    },
    {
        "timestamp": "2026-10-14T09:31:44Z",
        "messages": [
            {"role": "user", "content": "I want the week table to start on the right day for Tokyo. Right now it"
             " starts yesterday. Why?"},
            {"role": "assistant", "content": "Without a `timezone` parameter Open-Meteo aggregates daily values"
             " over days in GMT, so for Tokyo (UTC+9) the first \"day\" begins at 09:00 local time the day before."
             " Pass `timezone=auto` in daily_forecast(): the days are then the place's own, and the answer carries"
             " `utc_offset_seconds`, which week_table() can use to label today and tomorrow in the place's time."},
            {"role": "user", "content": "Does the current weather call need it too?"},
            {"role": "assistant", "content": "No. `current` is a single observation with an ISO time; only the"
             " daily aggregation depends on where the day starts. Adding `timezone=auto` there changes nothing but"
             " the time string, so keep the request as it is and the cache keys stay the same."},
        ],
    },
    {
        "timestamp": "2026-10-15T11:02:39Z",
        "feedback": "down",
        "messages": [
            {"role": "user", "content": "Make the HTTP calls in skycast simpler."},
            {"role": "assistant", "content": "Add `requests` to pyproject.toml and replace `_get_json()` with"
             " `requests.get(url, timeout=timeout).json()`; the retry loop can go, requests handles it."},
            {"role": "user", "content": "No: the CLI has no third-party dependencies on purpose, and requests"
             " does not retry by itself."},
        ],
    },
    {
        "timestamp": "2026-10-19T13:47:05Z",
        "feedback": "positive",
        "messages": [
            {"role": "user", "content": "Typing \"Paris\" right after \"Berlin\" sometimes shows Berlin's forecast."
             " What is going on in useForecast?"},
            {"role": "assistant", "content": "Two requests race: the slower Berlin answer arrives after the Paris"
             " one and overwrites it. Give each city its own `AbortController` and abort it when the city changes"
             " or the component unmounts:\n\n```ts\nuseEffect(() => {\n  const controller = new"
             " AbortController();\n  setState({ status: \"loading\" });\n  loadForecast(city, controller.signal)\n"
             "    .then((result) => setState({ status: \"ready\", ...result }))\n    .catch((error) => {\n"
             "      if (error.name !== \"AbortError\") setState({ status: \"error\", message: error.message });\n"
             "    });\n  return () => controller.abort();\n}, [city]);\n```\n\nAn aborted fetch rejects with"
             " `AbortError`, which is ignored, so only the latest city can set the state."},
        ],
    },
    {
        "timestamp": "2026-10-21T15:12:58Z",
        "messages": [
            {"role": "user", "content": "Is the web dashboard's TypeScript strict?"},
            {"role": "assistant", "content": "Yes."},
        ],
    },
    {
        "timestamp": "2026-10-22T08:55:16Z",
        "feedback": True,
        "messages": [
            {"role": "user", "content": "How do I show the temperature in a waybar module with skycast?"},
            {"role": "assistant", "content": "Use `--json` and pick the field with jq. In"
             " `~/.config/waybar/config`:\n\n```json\n\"custom/weather\": {\n  \"exec\": \"skycast now Berlin"
             " --json | jq -r '.current.temperature'\",\n  \"interval\": 600,\n  \"format\": \"{}°\"\n}\n```\n\n"
             "Numbers in the JSON are already converted to `--units`, and the 10-minute interval matches the"
             " cache, so waybar never causes more than one API call per ten minutes."},
            {"role": "user", "content": "And the description, like \"light rain\"?"},
        ],
    },
    {
        "timestamp": 1793352180000,
        "messages": [
            {"role": "user", "content": "We want to run our own Open-Meteo in Docker. How do I point skycast at"
             " it?"},
            {"role": "assistant", "content": "Put the URLs in `~/.config/skycast/config.toml` (or the file named by"
             " `$SKYCAST_CONFIG`):\n\n```toml\n[api]\nbase_url = \"http://weather.internal:8080/v1/forecast\"\n"
             "geocoding_url = \"http://weather.internal:8080/v1/search\"\ntimeout = 10\n```\n\n"
             "`load_settings()` reads it once at import; a missing file means the public defaults. Every request"
             " still goes through `_get_json()`, so retries and the circuit breaker apply to your server too."},
        ],
    },
    {
        "timestamp": "2026-10-28T10:20:33Z",
        "feedback": "positive",
        "messages": [
            {"role": "system", "content": "You are a coding assistant for the skycast repository (Python CLI in"
             " skycast/, React dashboard in web/). Answer briefly and point at files."},
            {"role": "user", "content": "Explain the three states of the CircuitBreaker in skycast/breaker.py."},
            {"role": "assistant", "content": "- **closed**: calls go through; each 5xx failure increments"
             " `failures`, and a success resets it to 0.\n- **open**: after `failure_threshold` (5) consecutive"
             " failures `opened_at` is set, and `before_call()` raises `CircuitOpenError` for `cooldown` (30 s)"
             " without calling the API.\n- **half-open**: once the cool-down has passed one trial call goes"
             " through; `record_success()` closes the breaker, `record_failure()` opens it again at once.\n\n"
             "The clock is injectable (`clock=time.monotonic`), which is how tests/test_breaker.py moves time"
             " without sleeping."},
        ],
    },
    {
        "feedback": "positive",
        "messages": [
            {"role": "user", "content": "The dark mode toggle forgets my choice after a reload. Where should it be"
             " stored?"},
            {"role": "assistant", "content": "In `localStorage`. useTheme() should start from the saved value and"
             " fall back to `window.matchMedia(\"(prefers-color-scheme: dark)\").matches`, set `data-theme` on"
             " `<html>` in an effect, and write the new value to `localStorage` whenever the user toggles. Then the"
             " CSS keys off `[data-theme=\"dark\"]` and a reload keeps the choice."},
        ],
    },
    {
        "timestamp": "2026-11-03T17:05:12Z",
        "messages": [
            {"role": "user", "content": "format_wind() crashes with TypeError when the API sends"
             " \"wind_speed_10m\": null. What is the smallest fix?"},
            {"role": "assistant", "content": "Handle `None` before formatting:\n\n```python\ndef"
             " format_wind(kmh: float | None, system: str = \"metric\") -> str:\n    if kmh is None:\n        return"
             " \"n/a\"\n    if system == \"imperial\":\n        return f\"{kmh_to_mph(kmh):.0f} mph\"\n    return"
             " f\"{kmh:.0f} km/h\"\n```\n\nStations in maintenance report null, so the same check belongs in"
             " format_temperature(), and `--json` should keep the value as `null` rather than \"n/a\"."},
        ],
    },
]
DUPLICATED = 3  # CONVERSATIONS[3] was logged twice, right after itself


# ============================================================================================================
# The last two weeks (30 October - 13 November): translations, weather icons, more forecast providers, alerts,
# a Rust status-bar helper, detail cards and tests. These commits touch many files each, as real feature work
# does, so the demo has enough pairs to train on without forcing; the alerts work plants the kind of secret and
# personal data a team pastes into chat (a Slack webhook, an ntfy token, a phone number), which the sensitive-data
# gate must find and a reviewer must decide on. Every value is made up.
# ============================================================================================================

MESSAGE_KEYS = ("now", "feelsLike", "wind", "humidity", "today", "tomorrow", "week", "search", "noResults", "offline",
                "units", "theme")
# language code -> (English name, the twelve messages in MESSAGE_KEYS order); {placeholders} stay as they are.
TRANSLATIONS = {
    "en": ("English", ["Now", "Feels like {temperature}", "Wind {speed} from {direction}", "Humidity", "Today",
                       "Tomorrow", "Next 7 days", "Search a city…", "No city with that name", "Offline – showing the"
                       " last forecast", "Units", "Theme"]),
    "de": ("German", ["Jetzt", "Gefühlt {temperature}", "Wind {speed} aus {direction}", "Luftfeuchtigkeit", "Heute",
                      "Morgen", "Nächste 7 Tage", "Stadt suchen…", "Keine Stadt mit diesem Namen", "Offline – letzte"
                      " Vorhersage", "Einheiten", "Design"]),
    "fr": ("French", ["Maintenant", "Ressenti {temperature}", "Vent {speed} du {direction}", "Humidité", "Aujourd'hui",
                      "Demain", "7 prochains jours", "Rechercher une ville…", "Aucune ville de ce nom", "Hors ligne –"
                      " dernière prévision", "Unités", "Thème"]),
    "es": ("Spanish", ["Ahora", "Sensación {temperature}", "Viento {speed} del {direction}", "Humedad", "Hoy",
                       "Mañana", "Próximos 7 días", "Buscar una ciudad…", "Ninguna ciudad con ese nombre", "Sin"
                       " conexión – último pronóstico", "Unidades", "Tema"]),
    "it": ("Italian", ["Adesso", "Percepita {temperature}", "Vento {speed} da {direction}", "Umidità", "Oggi",
                       "Domani", "Prossimi 7 giorni", "Cerca una città…", "Nessuna città con questo nome", "Offline –"
                       " ultima previsione", "Unità", "Tema"]),
    "pt": ("Portuguese", ["Agora", "Sensação {temperature}", "Vento {speed} de {direction}", "Umidade", "Hoje",
                          "Amanhã", "Próximos 7 dias", "Buscar uma cidade…", "Nenhuma cidade com esse nome", "Offline –"
                          " última previsão", "Unidades", "Tema"]),
    "nl": ("Dutch", ["Nu", "Voelt als {temperature}", "Wind {speed} uit {direction}", "Luchtvochtigheid", "Vandaag",
                     "Morgen", "Komende 7 dagen", "Zoek een stad…", "Geen stad met die naam", "Offline – laatste"
                     " verwachting", "Eenheden", "Thema"]),
    "pl": ("Polish", ["Teraz", "Odczuwalna {temperature}", "Wiatr {speed} z {direction}", "Wilgotność", "Dzisiaj",
                      "Jutro", "Następne 7 dni", "Szukaj miasta…", "Brak miasta o tej nazwie", "Offline – ostatnia"
                      " prognoza", "Jednostki", "Motyw"]),
    "sv": ("Swedish", ["Nu", "Känns som {temperature}", "Vind {speed} från {direction}", "Luftfuktighet", "I dag",
                       "I morgon", "Kommande 7 dagar", "Sök en stad…", "Ingen stad med det namnet", "Offline – senaste"
                       " prognosen", "Enheter", "Tema"]),
    "da": ("Danish", ["Nu", "Føles som {temperature}", "Vind {speed} fra {direction}", "Luftfugtighed", "I dag",
                      "I morgen", "De næste 7 dage", "Søg efter en by…", "Ingen by med det navn", "Offline – seneste"
                      " prognose", "Enheder", "Tema"]),
    "nb": ("Norwegian", ["Nå", "Føles som {temperature}", "Vind {speed} fra {direction}", "Luftfuktighet", "I dag",
                         "I morgen", "Neste 7 dager", "Søk etter en by…", "Ingen by med det navnet", "Frakoblet – siste"
                         " varsel", "Enheter", "Tema"]),
    "fi": ("Finnish", ["Nyt", "Tuntuu kuin {temperature}", "Tuuli {speed} suunnasta {direction}", "Kosteus", "Tänään",
                       "Huomenna", "Seuraavat 7 päivää", "Hae kaupunkia…", "Kaupunkia ei löytynyt", "Ei yhteyttä –"
                       " viimeisin ennuste", "Yksiköt", "Teema"]),
    "cs": ("Czech", ["Nyní", "Pocitově {temperature}", "Vítr {speed} od {direction}", "Vlhkost", "Dnes", "Zítra",
                     "Příštích 7 dní", "Hledat město…", "Žádné město s tímto názvem", "Offline – poslední předpověď",
                     "Jednotky", "Motiv"]),
    "sk": ("Slovak", ["Teraz", "Pocitovo {temperature}", "Vietor {speed} od {direction}", "Vlhkosť", "Dnes", "Zajtra",
                      "Nasledujúcich 7 dní", "Hľadať mesto…", "Žiadne mesto s týmto názvom", "Offline – posledná"
                      " predpoveď", "Jednotky", "Motív"]),
    "hu": ("Hungarian", ["Most", "Hőérzet {temperature}", "Szél {speed} {direction} felől", "Páratartalom", "Ma",
                         "Holnap", "Következő 7 nap", "Város keresése…", "Nincs ilyen nevű város", "Offline – utolsó"
                         " előrejelzés", "Mértékegységek", "Téma"]),
    "ro": ("Romanian", ["Acum", "Se simte ca {temperature}", "Vânt {speed} din {direction}", "Umiditate", "Azi",
                        "Mâine", "Următoarele 7 zile", "Caută un oraș…", "Niciun oraș cu acest nume", "Offline – ultima"
                        " prognoză", "Unități", "Temă"]),
    "tr": ("Turkish", ["Şimdi", "Hissedilen {temperature}", "Rüzgâr {speed}, {direction} yönünden", "Nem", "Bugün",
                       "Yarın", "Sonraki 7 gün", "Şehir ara…", "Bu adda şehir yok", "Çevrimdışı – son tahmin",
                       "Birimler", "Tema"]),
    "el": ("Greek", ["Τώρα", "Αίσθηση {temperature}", "Άνεμος {speed} από {direction}", "Υγρασία", "Σήμερα", "Αύριο",
                     "Επόμενες 7 ημέρες", "Αναζήτηση πόλης…", "Καμία πόλη με αυτό το όνομα", "Εκτός σύνδεσης –"
                     " τελευταία πρόγνωση", "Μονάδες", "Θέμα"]),
    "ru": ("Russian", ["Сейчас", "Ощущается как {temperature}", "Ветер {speed}, {direction}", "Влажность", "Сегодня",
                       "Завтра", "Следующие 7 дней", "Найти город…", "Город с таким названием не найден", "Офлайн –"
                       " последний прогноз", "Единицы", "Тема"]),
    "uk": ("Ukrainian", ["Зараз", "Відчувається як {temperature}", "Вітер {speed}, {direction}", "Вологість",
                         "Сьогодні", "Завтра", "Наступні 7 днів", "Знайти місто…", "Немає міста з такою назвою",
                         "Офлайн – останній прогноз", "Одиниці", "Тема"]),
    "ja": ("Japanese", ["現在", "体感 {temperature}", "風 {direction}から{speed}", "湿度", "今日", "明日",
                        "7日間の予報", "都市を検索…", "その名前の都市はありません",
                        "オフライン – 最後の予報を表示", "単位", "テーマ"]),
    "ko": ("Korean", ["지금", "체감 {temperature}", "바람 {direction}에서 {speed}", "습도", "오늘", "내일", "향후 7일",
                      "도시 검색…", "해당 이름의 도시가 없습니다", "오프라인 – 마지막 예보", "단위", "테마"]),
    "zh": ("Chinese", ["现在", "体感 {temperature}", "{direction}风 {speed}", "湿度", "今天", "明天", "未来 7 天",
                       "搜索城市…",
                       "没有这个名字的城市", "离线 – 显示最近的预报", "单位", "主题"]),
    "hi": ("Hindi", ["अभी", "महसूस {temperature}", "हवा {direction} से {speed}", "नमी", "आज", "कल", "अगले 7 दिन",
                     "शहर खोजें…", "इस नाम का कोई शहर नहीं", "ऑफ़लाइन – पिछला पूर्वानुमान", "इकाइयाँ", "थीम"]),
    "id": ("Indonesian", ["Sekarang", "Terasa {temperature}", "Angin {speed} dari {direction}", "Kelembapan",
                          "Hari ini", "Besok", "7 hari ke depan", "Cari kota…", "Tidak ada kota dengan nama itu",
                          "Offline – prakiraan terakhir", "Satuan", "Tema"]),
    "vi": ("Vietnamese", ["Bây giờ", "Cảm giác như {temperature}", "Gió {speed} từ hướng {direction}", "Độ ẩm",
                          "Hôm nay", "Ngày mai", "7 ngày tới", "Tìm thành phố…", "Không có thành phố nào tên như vậy",
                          "Ngoại tuyến – dự báo gần nhất", "Đơn vị", "Giao diện"]),
    "th": ("Thai", ["ตอนนี้", "รู้สึกเหมือน {temperature}", "ลม {speed} จาก{direction}", "ความชื้น", "วันนี้", "พรุ่งนี้",
                    "7 วันข้างหน้า", "ค้นหาเมือง…", "ไม่พบเมืองชื่อนี้", "ออฟไลน์ – พยากรณ์ล่าสุด", "หน่วย", "ธีม"]),
    "he": ("Hebrew", ["עכשיו", "מרגיש כמו {temperature}", "רוח {speed} מ{direction}", "לחות", "היום", "מחר",
                      "7 הימים הבאים", "חיפוש עיר…", "אין עיר בשם הזה", "לא מקוון – התחזית האחרונה", "יחידות",
                      "ערכת נושא"]),
    "ar": ("Arabic", ["الآن", "الإحساس {temperature}", "رياح {speed} من {direction}", "الرطوبة", "اليوم", "غدًا",
                      "الأيام السبعة القادمة", "ابحث عن مدينة…", "لا توجد مدينة بهذا الاسم", "غير متصل – آخر توقعات",
                      "الوحدات", "السمة"]),
    "ca": ("Catalan", ["Ara", "Sensació {temperature}", "Vent {speed} de {direction}", "Humitat", "Avui", "Demà",
                       "Propers 7 dies", "Cerca una ciutat…", "Cap ciutat amb aquest nom", "Sense connexió – darrera"
                       " previsió", "Unitats", "Tema"]),
}
RIGHT_TO_LEFT = ("he", "ar")


def _locale_ts(code: str) -> str:
    name, texts = TRANSLATIONS[code]
    lines = [f'  {key}: "{text}",' for key, text in zip(MESSAGE_KEYS, texts, strict=True)]
    if code == "en":
        keys = "\n".join(f"  {key}: string;" for key in MESSAGE_KEYS)
        return (f"// English strings for the dashboard, and the shape every translation has (#31).\n"
                f"export interface Messages {{\n{keys}\n}}\n\nexport const en: Messages = {{\n"
                + "\n".join(lines) + "\n};\n")
    direction = "  // written right to left: index.ts sets dir=\"rtl\" on <html>\n" if code in RIGHT_TO_LEFT else ""
    return (f"// {name} strings for the dashboard (#31). Keys match en.ts; {{placeholders}} stay as they are.\n"
            f'import type {{ Messages }} from "./en";\n\nexport const {code}: Messages = {{\n{direction}'
            + "\n".join(lines) + "\n};\n")


I18N_INDEX_TS = (
    "// Every translation of the dashboard, and the one to use for a browser language (#31).\n"
    'import type { Messages } from "./en";\n'
    + "".join(f'import {{ {code} }} from "./{code}";\n' for code in TRANSLATIONS)
    + "\nexport const LOCALES: Record<string, Messages> = {\n"
    + "".join(f"  {code},\n" for code in TRANSLATIONS)
    + "};\n\n"
    f"export const RIGHT_TO_LEFT = new Set({list(RIGHT_TO_LEFT)!r});\n\n".replace("'", '"')
    + "export function pickLocale(languages: readonly string[]): string {\n"
    "  for (const language of languages) {\n"
    '    const base = language.toLowerCase().split("-")[0];\n'
    "    if (base in LOCALES) return base;\n"
    '    if (base === "no" || base === "nn") return "nb";\n'
    "  }\n"
    '  return "en";\n'
    "}\n\n"
    "export function format(template: string, values: Record<string, string>): string {\n"
    "  return template.replace(/\\{(\\w+)\\}/g, (whole, key) => values[key] ?? whole);\n"
    "}\n"
)

# Weather icons (#33): name -> (title, WMO weather codes, SVG parts on a 24x24 grid).
_SUN = ('<circle cx="12" cy="12" r="4" fill="#f5b700" />',
        '<path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4"'
        ' stroke="#f5b700" strokeWidth={1.5} strokeLinecap="round" />')
_SMALL_SUN = ('<circle cx="8" cy="8" r="3" fill="#f5b700" />',
              '<path d="M8 2.5v1.2M2.5 8h1.2M4.1 4.1l.9.9M11.9 4.1l-.9.9" stroke="#f5b700" strokeWidth={1.2}'
              ' strokeLinecap="round" />')
# Shapes are circles, rects and straight lines: no arc strings of bare numbers in the markup.
_MOON = ('<circle cx="12" cy="12" r="8" fill="#9aa9c9" />', '<circle cx="16" cy="9" r="7" fill="var(--bg)" />')
_SMALL_MOON = ('<circle cx="8" cy="8" r="5" fill="#9aa9c9" />', '<circle cx="10.5" cy="6" r="4" fill="var(--bg)" />')
_CLOUD = ('<g fill="#c4ccd8">', '  <circle cx="9" cy="13" r="4" />', '  <circle cx="14" cy="11" r="5" />',
          '  <rect x="5" y="13" width="15" height="5" rx="2.5" />', "</g>")
_DARK_CLOUD = ('<g fill="#7d8797">', '  <circle cx="8.5" cy="11" r="4" />', '  <circle cx="14" cy="9" r="5.5" />',
               '  <rect x="4.5" y="11" width="16" height="5" rx="2.5" />', "</g>")


def _drops(count: int, long: bool = False, color: str = "#3b82f6") -> tuple[str, ...]:
    length = 4 if long else 2.5
    xs = [8 + index * (8 / max(1, count - 1)) for index in range(count)] if count > 1 else [12]
    return tuple(f'<line x1="{x:.1f}" y1="18" x2="{x - 1:.1f}" y2="{18 + length}" stroke="{color}" strokeWidth={{1.6}}'
                 ' strokeLinecap="round" />' for x in xs)


def _flakes(count: int) -> tuple[str, ...]:
    xs = [8 + index * (8 / max(1, count - 1)) for index in range(count)] if count > 1 else [12]
    return tuple(f'<text x="{x:.1f}" y="22.5" fontSize="5" textAnchor="middle" fill="#60a5fa">❄</text>' for x in xs)


_FOG = tuple(f'<line x1="{4 + shift}" y1="{y}" x2="{20 - shift}" y2="{y}" stroke="#9ca3af" strokeWidth={{1.5}}'
             ' strokeLinecap="round" />' for shift, y in ((0, 8), (2, 12), (1, 16), (3, 20)))
_BOLT = ('<polygon points="13,13 10,18 13,18 11,23 16,16 13,16 15,13" fill="#facc15" />',)
_HAIL = tuple(f'<circle cx="{x}" cy="21" r="1.2" fill="#e5e7eb" stroke="#9ca3af" strokeWidth={{0.5}} />'
              for x in (8, 12, 16))
_ICE = ('<path d="M6 21.5h12" stroke="#93c5fd" strokeWidth={1.2} strokeDasharray="1.5 1" />',)
_GUST = tuple(f'<line x1="3" y1="{y}" x2="{x}" y2="{y}" stroke="#64748b" strokeWidth={{1.6}}'
              ' strokeLinecap="round" />' for x, y in ((15, 8), (20, 12), (11, 16))) + (
    '<circle cx="16" cy="6" r="2" stroke="#64748b" fill="none" />',)

ICONS = {
    "Clear": ("Clear sky", (0,), _SUN),
    "ClearNight": ("Clear night", (0,), _MOON),
    "MainlyClear": ("Mainly clear", (1,), _SUN + ('<ellipse cx="17" cy="17" rx="4" ry="2.5" fill="#c4ccd8" />',)),
    "PartlyCloudy": ("Partly cloudy", (2,), _SMALL_SUN + _CLOUD),
    "PartlyCloudyNight": ("Partly cloudy night", (2,), _SMALL_MOON + _CLOUD),
    "Overcast": ("Overcast", (3,), _DARK_CLOUD + ('<ellipse cx="14" cy="17" rx="6" ry="3" fill="#c4ccd8" />',)),
    "Fog": ("Fog", (45,), _FOG),
    "RimeFog": ("Depositing rime fog", (48,), _FOG + _ICE),
    "DrizzleLight": ("Light drizzle", (51,), _CLOUD + _drops(2)),
    "Drizzle": ("Drizzle", (53, 55), _CLOUD + _drops(3)),
    "FreezingDrizzle": ("Freezing drizzle", (56, 57), _CLOUD + _drops(2, color="#93c5fd") + _ICE),
    "RainLight": ("Light rain", (61,), _DARK_CLOUD + _drops(2, long=True)),
    "Rain": ("Rain", (63,), _DARK_CLOUD + _drops(3, long=True)),
    "RainHeavy": ("Heavy rain", (65,), _DARK_CLOUD + _drops(5, long=True, color="#1d4ed8")),
    "FreezingRain": ("Freezing rain", (66, 67), _DARK_CLOUD + _drops(3, long=True, color="#93c5fd") + _ICE),
    "SnowLight": ("Light snow", (71,), _CLOUD + _flakes(2)),
    "Snow": ("Snow", (73,), _CLOUD + _flakes(3)),
    "SnowHeavy": ("Heavy snow", (75,), _DARK_CLOUD + _flakes(4)),
    "SnowGrains": ("Snow grains", (77,), _CLOUD + tuple(f'<circle cx="{x}" cy="20.5" r="0.8" fill="#60a5fa" />'
                                                        for x in (7, 10, 13, 16))),
    "RainShowers": ("Rain showers", (80, 81, 82), _SMALL_SUN + _CLOUD + _drops(3, long=True)),
    "SnowShowers": ("Snow showers", (85, 86), _SMALL_SUN + _CLOUD + _flakes(2)),
    "Thunderstorm": ("Thunderstorm", (95,), _DARK_CLOUD + _BOLT),
    "ThunderstormHail": ("Thunderstorm with hail", (96, 99), _DARK_CLOUD + _BOLT + _HAIL),
    "Windy": ("Strong wind", (), _GUST),
}


def _icon_tsx(name: str) -> str:
    title, codes, parts = ICONS[name]
    which = f"WMO {', '.join(map(str, codes))}" if codes else "no WMO code: shown from wind_gusts_10m above 60 km/h"
    body = "\n".join(f"      {part}" for part in parts)
    return (f"// {title} ({which}), on the 24x24 grid shared by web/src/icons (#33).\n"
            f'import type {{ IconProps }} from "./index";\n\n'
            f'export function {name}({{ size = 24, title = "{title}" }}: IconProps) {{\n'
            f"  return (\n"
            f'    <svg width={{size}} height={{size}} viewBox="0 0 24 24" role="img" aria-label={{title}}>\n'
            f"      <title>{{title}}</title>\n{body}\n    </svg>\n  );\n}}\n")


ICONS_INDEX_TS = (
    "// Weather icons by WMO weather code (#33); night variants for clear and partly cloudy skies.\n"
    'import type { ComponentType } from "react";\n'
    + "".join(f'import {{ {name} }} from "./{name}";\n' for name in ICONS)
    + "\nexport interface IconProps {\n  size?: number;\n  title?: string;\n}\n\n"
    "const BY_CODE: Record<number, ComponentType<IconProps>> = {\n"
    + "".join(f"  {code}: {name},\n" for name, (_, codes, _) in ICONS.items() if not name.endswith("Night")
              for code in codes)
    + "};\n\n"
    "export function iconFor(code: number, night = false): ComponentType<IconProps> {\n"
    "  if (night && code === 0) return ClearNight;\n"
    "  if (night && code === 2) return PartlyCloudyNight;\n"
    "  return BY_CODE[code] ?? Overcast;\n"
    "}\n\nexport { Windy };\n"
)

# Detail cards (#41): name -> (what it shows, the API fields it reads, the body of its markup).
CARDS = {
    "HourlyChart": ("the next 24 hours of temperature as a sparkline", ("temperature_2m",),
                    '<polyline points={points(values)} fill="none" stroke="currentColor" strokeWidth={2} />'),
    "PrecipitationBars": ("rain per hour as bars, probability as their opacity",
                          ("precipitation", "precipitation_probability"),
                          '{values.map((mm, index) => <rect key={index} x={index * 6} y={40 - mm * 8} width={4}'
                          ' height={mm * 8} opacity={0.3 + 0.7 * (extra[index] ?? 0) / 100} />)}'),
    "SunTimes": ("sunrise and sunset in the place's time", ("sunrise", "sunset"),
                 '<p>↑ {formatClock(values[0], offset)} · ↓ {formatClock(values[1], offset)}</p>'),
    "UvIndexCard": ("today's highest UV index with the WHO band", ("uv_index_max",),
                    '<p className={uvBand(values[0])}>UV {values[0].toFixed(0)} · {uvAdvice(values[0])}</p>'),
    "HumidityCard": ("relative humidity and the dew point", ("relative_humidity_2m", "dew_point_2m"),
                     '<p>{values[0]}% · dew point {formatTemperature(extra[0], units)}</p>'),
    "PressureTrend": ("sea-level pressure and whether it rose or fell in three hours", ("pressure_msl",),
                      '<p>{values.at(-1)?.toFixed(0)} hPa {trendArrow(values.at(-4), values.at(-1))}</p>'),
    "VisibilityCard": ("visibility in km, with fog below 1 km", ("visibility",),
                       '<p className={values[0] < 1000 ? "fog" : ""}>{(values[0] / 1000).toFixed(1)} km</p>'),
    "FeelsLikeCard": ("apparent temperature beside the measured one", ("apparent_temperature", "temperature_2m"),
                      '<p>feels {formatTemperature(values[0], units)} · measured {formatTemperature(extra[0], units)}'
                      '</p>'),
    "WindGustCard": ("wind gusts with the Beaufort name", ("wind_gusts_10m",),
                     '<p>gusts {formatWind(values[0], units)} · {beaufortName(values[0])}</p>'),
    "SnowDepthCard": ("snow on the ground, hidden when there is none", ("snow_depth",),
                      '{values[0] > 0 ? <p>{(values[0] * 100).toFixed(0)} cm of snow</p> : null}'),
    "CloudCoverCard": ("cloud cover in eighths, as forecasters say it", ("cloud_cover",),
                       '<p>{Math.round(values[0] / 12.5)}/8 · {values[0] > 87 ? "overcast" : "broken"}</p>'),
    "RainChanceCard": ("the chance of rain in the next six hours", ("precipitation_probability",),
                       '<p>{Math.max(...values.slice(0, 6))}% chance of rain before {formatClock(extra[0], offset)}'
                       '</p>'),
    "DaylightCard": ("how long the day is and how much it changed since yesterday", ("daylight_duration",),
                     '<p>{(values[0] / 3600).toFixed(1)} h of daylight ({((values[0] - values[1]) / 60).toFixed(0)}'
                     ' min)</p>'),
    "SoilTemperatureCard": ("soil temperature at 6 cm, for gardeners", ("soil_temperature_6cm",),
                            '<p>soil {formatTemperature(values[0], units)}{values[0] < 5 ? " · too cold to sow" : ""}'
                            '</p>'),
    "FreezingLevelCard": ("the freezing level in metres above the sea", ("freezing_level_height",),
                          '<p>0 °C at {values[0].toFixed(0)} m{values[0] < 500 ? " · snow down to the valleys" : ""}'
                          '</p>'),
}


def _card_tsx(name: str) -> str:
    shows, fields, body = CARDS[name]
    extra = f" // {fields[1]}" if len(fields) > 1 else ""
    helpers = [helper for helper in ("beaufortName", "formatClock", "formatTemperature", "formatWind", "points",
                                     "trendArrow", "uvAdvice", "uvBand") if helper + "(" in body]
    imports = f'import {{ {", ".join(helpers)} }} from "../utils/cards";\n' if helpers else ""
    return (f"// {name}: {shows} (#41). Reads {', '.join(fields)} from the forecast.\n"
            f'import type {{ Units }} from "../api";\n{imports}\n'
            f"interface Props {{\n  values: number[]; // {fields[0]}\n  extra?: number[];{extra}\n  units: Units;\n"
            f"  offset: number;\n}}\n\n"
            f"export function {name}({{ values, extra = [], units, offset }}: Props) {{\n"
            f'  return (\n    <section className="card detail {name[0].lower() + name[1:]}">\n'
            f"      {body}\n    </section>\n  );\n}}\n")


# ---- the screens of the last two weeks
LATE_SCREENS = {
    # ---- i18n (#31)
    "gh-issue-31": {
        "app": CHROME, "window": "Translate the dashboard · Issue #31 · skycast-dev/skycast", "url": f"{GH}/issues/31",
        "topics": ["i18n"],
        "text": FILES["GH_HEADER"] +
            "Translate the dashboard #31\nOpen  priya-r opened this issue on Oct 28 · 4 comments\n"
        "priya-r commented on Oct 28\nUsers from Poland, Japan and Brazil asked for the dashboard in their language."
        " The community sheet has 30 languages translated now (link below). Plan: one file per language in"
        " web/src/i18n/<code>.ts with the keys of en.ts, a useLocale() hook that picks navigator.languages and falls"
        " back to English, and dir=\"rtl\" for Hebrew and Arabic.\nmaya-l commented on Oct 29\nI'll generate the"
        " files from the sheet and add pickLocale() + format() for the {placeholders}.\nLabels enhancement  dashboard"
        "  i18n",
    },
    "sheet-translations": {
        "app": CHROME, "window": "skycast strings – Google Sheets", "url": "https://docs.google.com/spreadsheets/d/1sky",
        "topics": ["i18n"],
        "text": "skycast strings  File  Edit  View  Insert  Format  Data\nkey | en | de | fr | ja | pl | ar\n"
        "now | Now | Jetzt | Maintenant | 現在 | Teraz | الآن\nfeelsLike | Feels like {temperature} | Gefühlt"
        " {temperature} | Ressenti {temperature} | 体感 {temperature} | Odczuwalna {temperature} |"
        " الإحساس {temperature}\n"
        "search | Search a city… | Stadt suchen… | Rechercher une ville… | 都市を検索… | Szukaj miasta… |"
        " ابحث عن مدينة…\n"
        "offline | Offline – showing the last forecast | Offline – letzte Vorhersage | Hors ligne – dernière prévision"
        "\n30 languages · reviewed by the community · export as web/src/i18n/<code>.ts",
    },
    "slack-i18n": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["i18n"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast\nPriya Raman  8:02 AM\nthe translation sheet for #31 is complete, 30"
        " languages 🎉\nMaya Lindqvist  8:05 AM\ngreat, generating web/src/i18n/*.ts from it today; en.ts defines the"
        " Messages interface so a missing key fails the build\nJonas Okafor  8:09 AM\nremember nb for Norwegian"
        " (browsers send no or nn too) and rtl for he/ar\nMessage #skycast",
    },
    "vscode-i18n-de": {
        "app": CODE, "window": "web/src/i18n/de.ts — skycast", "topics": ["i18n"],
        "text": None,  # filled below from the file itself
    },
    # ---- icons (#33)
    "gh-issue-33": {
        "app": CHROME, "window": "Replace the PNG sun with SVG icons for every weather code · Issue #33 ·"
        " skycast-dev/skycast", "url": f"{GH}/issues/33", "topics": ["icons"],
        "text": FILES["GH_HEADER"] +
            "Replace the PNG sun with SVG icons for every weather code #33\nOpen  sam-ito opened"
        " this issue on Oct 30 · 2 comments\nsam-ito commented on Oct 30\nThe card shows the same sun.png for rain and"
        " snow. The Figma page \"Icons / weather\" has 24 icons on a 24x24 grid, one per WMO code group, plus night"
        " variants for clear and partly cloudy. Please ship them as components in web/src/icons/ and an iconFor(code,"
        " night) lookup.\nmaya-l commented on Nov 2\nOn it: web/src/icons/<Name>.tsx, icons/index.ts with BY_CODE,"
        " and a WeatherIcon component for ForecastCard.\nLabels design  dashboard",
    },
    "figma-icons": {
        "app": "Figma", "window": "Skycast – Icons / weather – Figma", "url": None, "topics": ["icons"],
        "text": "Skycast  Icons / weather  Share  Dev Mode\nClear · ClearNight · MainlyClear · PartlyCloudy ·"
        " PartlyCloudyNight · Overcast · Fog · RimeFog · DrizzleLight · Drizzle · FreezingDrizzle · RainLight · Rain ·"
        " RainHeavy · FreezingRain · SnowLight · Snow · SnowHeavy · SnowGrains · RainShowers · SnowShowers ·"
        " Thunderstorm · ThunderstormHail · Windy\nFrame 24×24  stroke 1.5  sun #f5b700  cloud #c4ccd8  rain #3b82f6\n"
        "Inspect  Code: SVG  Export 24 layers",
    },
    "slack-icons": {
        "app": SLACK, "window": "skycast-design (Channel) - Skycast - Slack", "topics": ["icons"],
        "text": FILES["SLACK_SIDEBAR"] +
            "# skycast-design\nSam Ito  9:14 AM\nicons for #33 are final in Figma, 24 of them."
        " WMO 56/57 and 66/67 get the ice line under the drops\nMaya Lindqvist  9:20 AM\nthanks! turning each into a"
        " TSX component in web/src/icons, iconFor(code, night) picks ClearNight/PartlyCloudyNight after sunset\n"
        "Message #skycast-design",
    },
    "vscode-icon-rain": {"app": CODE, "window": "web/src/icons/RainHeavy.tsx — skycast", "topics": ["icons"],
                         "text": None},
    # ---- providers (#35)
    "gh-issue-35": {
        "app": CHROME, "window": "Support more forecast providers · Issue #35 · skycast-dev/skycast",
        "url": f"{GH}/issues/35", "topics": ["providers"],
        "text": FILES["GH_HEADER"] +
            "Support more forecast providers #35\nOpen  jonas-o opened this issue on Nov 2 · 3 comments"
        "\njonas-o commented on Nov 2\nOpen-Meteo is great, but in Norway MET Norway's own model is better and US users"
        " expect the NWS. Proposal: skycast/providers/ with a Provider base class (current() -> Current in metric),"
        " OpenMeteo as the default, MetNorway (api.met.no locationforecast 2.0), NationalWeatherService"
        " (api.weather.gov points -> forecastHourly) and BrightSky (DWD). `skycast now --provider metno Oslo`.\n"
        "maya-l commented on Nov 2\n+1, and map their symbols to WMO codes so describe() keeps working.\nLabels"
        " enhancement  cli",
    },
    "metno-docs": {
        "app": CHROME, "window": "Terms of Service | api.met.no", "url": "https://api.met.no/doc/TermsOfService",
        "topics": ["providers"],
        "text": "api.met.no  Documentation  Terms of service  Status\nTerms of Service\nIdentification: all requests"
        " must (if possible) include an identifying User Agent-string (UA) in the request with the application/domain"
        " name, optionally version number. You should also include a company email address or a link to the"
        " company website where we can find contact information. If we cannot contact you in case of problems, you"
        " risk being blocked without warning.\nTraffic: do not send more than 20 requests/second; cache and use"
        " If-Modified-Since. Coordinates: truncate to max 4 decimals (locationforecast/2.0/compact).",
    },
    "nws-docs": {
        "app": CHROME, "window": "API Web Service – National Weather Service", "url": "https://www.weather.gov/documentation/services-web-api",
        "topics": ["providers"],
        "text": "National Weather Service  API Web Service\nHow do I get the forecast? Forecasts are created at each"
        " NWS Weather Forecast Office on their own grid. To obtain the grid forecast for a point location, use the"
        " /points endpoint: https://api.weather.gov/points/{latitude},{longitude}. This will return the grid"
        " endpoints in the forecast, forecastHourly, and forecastGridData properties.\nAuthentication: a User-Agent"
        " is required to identify your application. (myweatherapp.com, contact@myweatherapp.com)",
    },
    "vscode-metno": {"app": CODE, "window": "skycast/providers/metno.py — skycast", "topics": ["providers"],
                     "text": None},
    # ---- alerts (#38): the team pastes a webhook, a token and a phone number into the channel
    "gh-issue-38": {
        "app": CHROME, "window": "Severe weather alerts · Issue #38 · skycast-dev/skycast", "url": f"{GH}/issues/38",
        "topics": ["alerts"],
        "text": FILES["GH_HEADER"] +
            "Severe weather alerts #38\nOpen  priya-r opened this issue on Nov 3 · 5 comments\n"
        "priya-r commented on Nov 3\nThe cycling club wants a heads-up: gusts above 75 km/h, more than 20 mm of rain"
        " in a day, thunderstorms, and frost after a mild day (black ice).\njonas-o commented on Nov 3\nskycast/alerts/"
        " with rules.py (check_rules(days) -> [Alert]) and one module per channel: slack.py (incoming webhook),"
        " ntfy.py (push to phones) and discord.py. Secrets from the environment only.\nLabels enhancement  alerts",
    },
    "slack-alerts-webhook": {
        "app": SLACK, "window": "skycast (Channel) - Skycast - Slack", "topics": ["alerts"],
        "text": FILES["SLACK_SIDEBAR"] + "# skycast\nJonas Okafor  10:12 AM\nfor testing the #38 alerts"
        " (skycast/alerts/slack.py, ntfy.py, discord.py), here's the incoming webhook for #weather-alerts:\n"
        "https://hooks.slack.com/services/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\nand the"
        " ntfy token for the skycast-alerts topic: tk_8vq2m0c7w4xz1n6b5r3l9k2jhd0s (please don't commit them, use"
        " SKYCAST_SLACK_WEBHOOK / SKYCAST_NTFY_TOKEN)\nPriya Raman  10:20 AM\nthe club's on-call for storm nights is"
        " Tomasz, +49 1522 3847561 — can ntfy reach him?\nMaya Lindqvist  10:24 AM\nyes, ntfy app on his phone,"
        " priority urgent for thunder\nMessage #skycast",
    },
    "term-alerts-env": {
        "app": TERM, "window": "~/code/skycast — zsh — 132×38", "topics": ["alerts"],
        "text": "maya@mbp skycast % export SKYCAST_SLACK_WEBHOOK=https://hooks.slack.com/services/T04SKYC4ST/"
        "B07WXALRT9Q/f3Kp9ZtQm2VbX7yLcR8aWd1N\nmaya@mbp skycast % export SKYCAST_NTFY_TOPIC=skycast-alerts\n"
        "maya@mbp skycast % python -m pytest tests/test_alert_rules.py -q\n..  [100%]\n2 passed in 0.04s\n"
        "maya@mbp skycast % @TIME@",
    },
    "vscode-alert-rules": {"app": CODE, "window": "skycast/alerts/rules.py — skycast", "topics": ["alerts"],
                           "text": None},
    # ---- bar (#40)
    "gh-issue-40": {
        "app": CHROME, "window": "A status-bar helper that does not start Python every minute · Issue #40 ·"
        " skycast-dev/skycast", "url": f"{GH}/issues/40", "topics": ["bar"],
        "text": FILES["GH_HEADER"] +
            "A status-bar helper that does not start Python every minute #40\nOpen  jonas-o opened"
        " this issue on Nov 4 · 2 comments\njonas-o commented on Nov 4\ni3blocks and waybar run their command every"
        " 60 s; `skycast now` costs 180 ms of Python start-up each time. A small Rust binary in bar/ (skycast-bar)"
        " that reads skycast's cache (~/.cache/skycast/<sha256 of the URL>.json) and prints one line, or waybar JSON"
        " with --format waybar.\nmaya-l commented on Nov 4\nnice, share config.toml too (base_url, home location).\n"
        "Labels enhancement  bar",
    },
    "term-cargo-bar": {
        "app": TERM, "window": "~/code/skycast/bar — cargo — 132×38", "topics": ["bar"],
        "text": "jonas@mbp bar % cargo build --release\n   Compiling skycast-bar v0.1.0 (/Users/jonas/code/skycast/bar)"
        "\n    Finished `release` profile [optimized] target(s) in 21.87s\njonas@mbp bar % time ./target/release/"
        "skycast-bar --format waybar\n{\"text\": \"\ue302 7°C\", \"class\": \"clear\"}\n./target/release/skycast-bar"
        "  0.00s user 0.00s system 61% cpu 0.006 total\njonas@mbp bar % @TIME@",
    },
    "vscode-bar-fetch": {"app": CODE, "window": "bar/src/fetch.rs — skycast", "topics": ["bar"], "text": None},
    # ---- cards (#41)
    "gh-issue-41": {
        "app": CHROME, "window": "Detail cards under the forecast · Issue #41 · skycast-dev/skycast",
        "url": f"{GH}/issues/41", "topics": ["cards"],
        "text": FILES["GH_HEADER"] + "Detail cards under the forecast #41\nOpen  sam-ito opened this issue on Nov 5 · 1"
        " comment\n"
        "sam-ito commented on Nov 5\nFigma \"Dashboard / details\": a grid of small cards under the week: HourlyChart,"
        " PrecipitationBars, SunTimes, UvIndexCard, HumidityCard, PressureTrend, VisibilityCard, FeelsLikeCard,"
        " WindGustCard and SnowDepthCard (hidden without snow). Each takes the hourly/daily values it needs.\n"
        "Labels design  dashboard",
    },
    "figma-cards": {
        "app": "Figma", "window": "Skycast – Dashboard / details – Figma", "url": None, "topics": ["cards"],
        "text": "Skycast  Dashboard / details  Share  Dev Mode\nHourly (sparkline)  Precipitation (bars, opacity ="
        " probability)  Sun (↑ 07:21 · ↓ 16:32)  UV 2 · low  Humidity 81% · dew point 3 °C  Pressure 1014 hPa ↗\n"
        "Visibility 12.4 km  Feels like 4 °C · measured 7 °C  Gusts 38 km/h · fresh breeze  Snow 0 cm (hidden)\n"
        "card radius 12  padding 16  grid 4 columns",
    },
    "vscode-card-pressure": {"app": CODE, "window": "web/src/components/PressureTrend.tsx — skycast",
                             "topics": ["cards"], "text": None},
    # ---- tests (#44)
    "gh-issue-44": {
        "app": CHROME, "window": "Test the modules nobody tests yet · Issue #44 · skycast-dev/skycast",
        "url": f"{GH}/issues/44", "topics": ["tests"],
        "text": FILES["GH_HEADER"] +
            "Test the modules nobody tests yet #44\nOpen  jonas-o opened this issue on Nov 6 · 1"
        " comment\njonas-o commented on Nov 6\ncoverage: formatting.py 41%, geocode.py 0%, cache.py 0%, config.py 0%,"
        " scripts/release.py 0%. Add tests/test_formatting.py, test_geocode.py (the Springfield qualifier!),"
        " test_cache.py (TTL), test_config.py (self-hosted base_url) and test_release.py.\nLabels tests",
    },
    "term-coverage": {
        "app": TERM, "window": "~/code/skycast — pytest — 132×38", "topics": ["tests"],
        "text": "jonas@mbp skycast % python -m pytest --cov=skycast --cov=scripts -q\n.....................  [100%]\n"
        "Name                     Stmts   Miss  Cover\nskycast/cache.py            21      0   100%\nskycast/config.py"
        "           19      1    95%\nskycast/formatting.py       48      3    94%\nskycast/geocode.py          31"
        "      2    94%\nscripts/release.py          22      4    82%\nTOTAL                      412     19    95%\n"
        "21 passed in 0.61s\njonas@mbp skycast % @TIME@",
    },
}
LATE_SCREENS["vscode-i18n-de"]["text"] = _vscode("web/src/i18n/de.ts", _locale_ts("de"), TS_STATUS)
LATE_SCREENS["vscode-icon-rain"]["text"] = _vscode("web/src/icons/RainHeavy.tsx", _icon_tsx("RainHeavy"), TS_STATUS)
LATE_SCREENS["vscode-metno"]["text"] = _vscode("skycast/providers/metno.py", FILES["PROVIDERS_METNO_PY"])
LATE_SCREENS["vscode-alert-rules"]["text"] = _vscode("skycast/alerts/rules.py", FILES["ALERTS_RULES_PY"])
LATE_SCREENS["vscode-bar-fetch"]["text"] = _vscode("bar/src/fetch.rs", FILES["BAR_FETCH_RS"], "Rust")
LATE_SCREENS["vscode-card-pressure"]["text"] = _vscode("web/src/components/PressureTrend.tsx",
                                                       _card_tsx("PressureTrend"), TS_STATUS)
SCREENS.update(LATE_SCREENS)

COMMITS += [
    {
        "key": "i18n",
        "author": "maya",
        "discussed": "2026-10-30 07:40",
        "committed": "2026-10-30 12:10:22",
        "message": f"Translate the dashboard into {len(TRANSLATIONS)} languages (#31)\n\n"
        "One file per language in web/src/i18n/<code>.ts with the keys of en.ts\n(a missing key fails the build);"
        " useLocale() picks the saved or the\nbrowser's language, falls back to English and sets dir=rtl for he/ar.",
        "changes": [("write", f"web/src/i18n/{code}.ts", _locale_ts(code)) for code in TRANSLATIONS]
        + [("write", "web/src/i18n/index.ts", I18N_INDEX_TS),
           ("write", "web/src/hooks/useLocale.ts", FILES["USE_LOCALE_TS"])],
        "visits": [("gh-issue-31", 6), ("sheet-translations", 5), ("slack-i18n", 4), ("vscode-i18n-de", 6)],
        "audio": [
            (-6, "priya", " The translation sheet is done, thirty languages, the community checked every one. Can we"
             " ship it this week? The Polish and Japanese users keep asking."),
            (-5, "maya", " Yes, I'll generate one TypeScript file per language from the sheet, with the English file as"
             " the type, so a missing key breaks the build instead of showing an empty label."),
        ],
        "docs": [],
    },
    {
        "key": "icons",
        "author": "maya",
        "discussed": "2026-11-02 07:45",
        "committed": "2026-11-02 13:05:40",
        "message": f"SVG weather icons for every WMO code group (#33)\n\n{len(ICONS)} components in web/src/icons from"
        " Sam's Figma page, iconFor(code,\nnight) with night variants, and WeatherIcon for the forecast card.",
        "changes": [("write", f"web/src/icons/{name}.tsx", _icon_tsx(name)) for name in ICONS]
        + [("write", "web/src/icons/index.ts", ICONS_INDEX_TS),
           ("write", "web/src/components/WeatherIcon.tsx", FILES["WEATHER_ICON_TSX"])],
        "visits": [("gh-issue-33", 6), ("figma-icons", 5), ("slack-icons", 4), ("vscode-icon-rain", 6)],
        "audio": [
            (3, "sam", " All twenty-four icons are on the Figma page now, one per weather code group, and night"
             " versions for clear and partly cloudy. Stroke one and a half, the sun is the yellow from the brand"
             " sheet."),
        ],
        "docs": [],
    },
    {
        "key": "providers",
        "author": "jonas",
        "discussed": "2026-11-03 07:50",
        "committed": "2026-11-03 14:20:11",
        "message": "Forecast providers: MET Norway, the US NWS and Bright Sky (#35)\n\nskycast/providers/ with a"
        " Provider base class returning metric Current\nvalues; OpenMeteo stays the default. Symbols are mapped to WMO"
        " codes so\ndescribe() keeps working.",
        "changes": [
            ("write", "skycast/providers/__init__.py", FILES["PROVIDERS_INIT_PY"]),
            ("write", "skycast/providers/base.py", FILES["PROVIDERS_BASE_PY"]),
            ("write", "skycast/providers/openmeteo.py", FILES["PROVIDERS_OPENMETEO_PY"]),
            ("write", "skycast/providers/metno.py", FILES["PROVIDERS_METNO_PY"]),
            ("write", "skycast/providers/nws.py", FILES["PROVIDERS_NWS_PY"]),
            ("write", "skycast/providers/brightsky.py", FILES["PROVIDERS_BRIGHTSKY_PY"]),
            ("write", "tests/test_metno.py", FILES["TEST_METNO_PY"]),
            ("write", "tests/test_nws.py", FILES["TEST_NWS_PY"]),
        ],
        "visits": [("gh-issue-35", 6), ("metno-docs", 4), ("nws-docs", 4), ("vscode-metno", 6)],
        "audio": [
            (-10, "jonas", " MET Norway blocks anonymous clients, so the User-Agent has to name the app and a contact."
             " I'll put my work address in it for now, and the NWS only covers the US, so that one needs a clear"
             " error."),
        ],
        "docs": [],
    },
    {
        "key": "alerts",
        "author": "maya",
        "discussed": "2026-11-04 07:40",
        "committed": "2026-11-04 15:02:48",
        "message": "Severe weather alerts to Slack, ntfy and Discord (#38)\n\ncheck_rules(days) flags gusts above 75"
        " km/h, more than 20 mm of rain,\nthunderstorms and frost after a mild day; one module per channel. The\n"
        "webhook and the token come from the environment only.",
        "changes": [
            ("write", "skycast/alerts/__init__.py", FILES["ALERTS_INIT_PY"]),
            ("write", "skycast/alerts/rules.py", FILES["ALERTS_RULES_PY"]),
            ("write", "skycast/alerts/slack.py", FILES["ALERTS_SLACK_PY"]),
            ("write", "skycast/alerts/ntfy.py", FILES["ALERTS_NTFY_PY"]),
            ("write", "skycast/alerts/discord.py", FILES["ALERTS_DISCORD_PY"]),
            ("write", "tests/test_alert_rules.py", FILES["TEST_ALERT_RULES_PY"]),
        ],
        "visits": [("gh-issue-38", 6), ("slack-alerts-webhook", 6), ("term-alerts-env", 3), ("vscode-alert-rules", 5)],
        "audio": [],
        "docs": [],
    },
    {
        "key": "bar",
        "author": "jonas",
        "discussed": "2026-11-05 08:00",
        "committed": "2026-11-05 14:40:05",
        "message": "skycast-bar: a Rust status-bar helper for i3blocks and waybar (#40)\n\nbar/ reads the cache the"
        " Python CLI writes (same key, same TTL) and the\nsame config.toml, and prints one line or waybar JSON in"
        " 6 ms instead of\n180 ms of Python start-up.",
        "changes": [
            ("write", "bar/src/main.rs", FILES["BAR_MAIN_RS"]),
            ("write", "bar/src/args.rs", FILES["BAR_ARGS_RS"]),
            ("write", "bar/src/fetch.rs", FILES["BAR_FETCH_RS"]),
            ("write", "bar/src/render.rs", FILES["BAR_RENDER_RS"]),
            ("write", "bar/src/cache.rs", FILES["BAR_CACHE_RS"]),
            ("write", "bar/src/icons.rs", FILES["BAR_ICONS_RS"]),
            ("write", "bar/src/config.rs", FILES["BAR_CONFIG_RS"]),
        ],
        "visits": [("gh-issue-40", 6), ("term-cargo-bar", 4), ("vscode-bar-fetch", 6)],
        "audio": [],
        "docs": [],
    },
    {
        "key": "cards",
        "author": "maya",
        "discussed": "2026-11-06 07:45",
        "committed": "2026-11-06 13:30:17",
        "message": f"Detail cards under the forecast: {len(CARDS)} small cards from Figma (#41)\n\nHourly"
        " sparkline, precipitation bars, sun times, UV, humidity, pressure\ntrend, visibility, feels-like, gusts"
        " and snow depth, each fed the\nhourly or daily values it shows.",
        "changes": [("write", f"web/src/components/{name}.tsx", _card_tsx(name)) for name in CARDS],
        "visits": [("gh-issue-41", 6), ("figma-cards", 5), ("vscode-card-pressure", 6)],
        "audio": [
            (-4, "sam", " The details frame has ten cards now. Snow depth only shows when there is snow, and the"
             " precipitation bars use the probability as their opacity."),
        ],
        "docs": [],
    },
    {
        "key": "tests",
        "author": "jonas",
        "discussed": "2026-11-09 08:05",
        "committed": "2026-11-09 12:45:30",
        "message": "Tests for formatting, geocoding, the cache, config, units, providers and alerts (#44)\n\n"
        "Coverage of skycast/ goes"
        " from 61% to 95%; the Springfield qualifier,\nthe cache TTL and a self-hosted base_url are pinned.",
        "changes": [
            ("write", "tests/test_formatting.py", FILES["TEST_FORMATTING_PY"]),
            ("write", "tests/test_geocode.py", FILES["TEST_GEOCODE_PY"]),
            ("write", "tests/test_cache.py", FILES["TEST_CACHE_PY"]),
            ("write", "tests/test_config.py", FILES["TEST_CONFIG_PY"]),
            ("write", "tests/test_release.py", FILES["TEST_RELEASE_PY"]),
            ("write", "tests/test_units_edges.py", FILES["TEST_UNITS_EDGES_PY"]),
            ("write", "tests/test_providers_registry.py", FILES["TEST_PROVIDERS_REGISTRY_PY"]),
            ("write", "tests/test_alert_channels.py", FILES["TEST_ALERT_CHANNELS_PY"]),
        ],
        "visits": [("gh-issue-44", 6), ("term-coverage", 5)],
        "audio": [],
        "docs": [],
    },
]
