"""Chat models: a base model, or a base model with a LoRA adapter (any adapter folder, a training run's adapter or
a deployed version), loaded with mlx-lm and kept in a small LRU cache so switching between them is instant.

A `ModelChoice` says what to load and is cheap to build (no mlx import); `ModelCache.get(choice)` loads it once.
The base of an adapter comes from its adapter_config.json (mlx-lm records the model it trained on), so an adapter
folder alone is enough. The default base model is $STUDIO_CHAT_BASE_MODEL, else the training default
(SmolLM2-135M-Instruct, converted once offline by engine.training.models).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.chat.layout import PromptLayout, detect_layout
from engine.errors import StudioError
from engine.processes import openblas_library, preload_openblas
from engine.store import Workspace
from engine.training.models import DEFAULT_BASE_MODEL, default_model_path, materialize, resolve_base_model

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class ChatError(StudioError):
    """A model or adapter for chat cannot be found or loaded."""


def default_chat_model() -> str:
    """The base model chat uses when none is named: $STUDIO_CHAT_BASE_MODEL, else the offline default."""
    return os.environ.get("STUDIO_CHAT_BASE_MODEL") or DEFAULT_BASE_MODEL


@dataclass(frozen=True)
class ModelChoice:
    """What to load: a base model spec (default alias, folder or hub id) and optionally an adapter folder.

    `data_dir` is the adapter's training data (for the prompt layout and example prompts); `version` is set for
    a deployed version; `role` is current or canary when the choice came from canary routing.
    """

    model: str
    adapter_dir: Path | None = None
    label: str = ""
    data_dir: Path | None = None
    version: int | None = None
    run_id: str | None = None
    role: str | None = None

    @property
    def name(self) -> str:
        return self.label or (f"adapter {self.adapter_dir}" if self.adapter_dir else f"base {self.model}")

    def base(self) -> ModelChoice:
        """The same base model without the adapter (its layout still follows the adapter's training data)."""
        return ModelChoice(self.model, None, f"base {_short_model(self.model)}", self.data_dir)


def canonical_model(spec: str) -> str:
    """The default alias for the converted default model's folder, so one model is one cache entry and one
    choice whether it was named by alias or by path (adapters record the path)."""
    try:
        if spec and Path(spec).expanduser().resolve() == default_model_path().resolve():
            return DEFAULT_BASE_MODEL
    except OSError:
        pass
    return spec


def _short_model(spec: str) -> str:
    """A folder's name, or the hub id / alias as given."""
    return Path(spec).name if spec.startswith(("/", ".", "~")) else spec


def base_choice(model: str | None = None, data_dir: str | Path | None = None) -> ModelChoice:
    spec = model or default_chat_model()
    return ModelChoice(spec, None, f"base {_short_model(spec)}", Path(data_dir) if data_dir else None)


def read_adapter_config(adapter_dir: Path) -> dict:
    """adapter_config.json of an adapter folder; ChatError (one sentence) when the folder is not an adapter."""
    folder = Path(adapter_dir).expanduser()
    if not folder.is_dir():
        raise ChatError(f"The adapter folder {folder} does not exist.")
    if not (folder / ADAPTER_FILE).is_file():
        raise ChatError(f"The adapter folder {folder} has no {ADAPTER_FILE}; point at the folder mlx-lm wrote.")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChatError(f"The adapter folder {folder} has no {ADAPTER_CONFIG}, so its base model is unknown.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChatError(f"{folder / ADAPTER_CONFIG} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ChatError(f"{folder / ADAPTER_CONFIG} must hold a JSON object.")
    return config


def adapter_choice(adapter_dir: str | Path, model: str | None = None, data_dir: str | Path | None = None,
                   label: str | None = None) -> ModelChoice:
    """A base + adapter choice for any adapter folder; the base defaults to the model the adapter was trained on."""
    folder = Path(adapter_dir).expanduser().resolve()
    config = read_adapter_config(folder)
    base = model or config.get("model")
    if not base:
        raise ChatError(f"{folder / ADAPTER_CONFIG} does not name its base model; pass --model.")
    trained_on = data_dir or config.get("data")
    return ModelChoice(canonical_model(str(base)), folder, label or f"adapter {folder.parent.name}/{folder.name}",
                       Path(trained_on) if trained_on else None)


def _versions():
    try:
        from engine.training import deploy
    except ImportError as exc:  # the versions module is part of the training issue
        raise ChatError(f"Adapter versions are not available in this build ({exc.name} is missing).") from None
    return deploy


def _run_data_dir(ws: Workspace, run_id: str | None) -> Path | None:
    if not run_id:
        return None
    from engine.training.runs import get_run

    try:
        return Path(get_run(ws, run_id, refresh=False).data_dir)
    except StudioError:
        return None


def version_choice(ws: Workspace, version: str | int) -> ModelChoice:
    """A deployed version (`v3`, `3`, or `current`) as a base + adapter choice, with its training data."""
    deploy = _versions()
    versions = deploy.list_versions(ws)
    if not versions:
        raise ChatError(f"No adapter version is deployed in {ws.root} yet; deploy a training run with "
                        f"`python -m engine deploy deploy RUN_ID`, or pass --adapter DIR.")
    if str(version).strip().lower() in ("current", "active"):
        record = deploy.current_version(ws)
        if record is None:
            raise ChatError("No version is current (the base model is served); name a version such as v1.")
        adapter_dir, label = ws.path("versions", "active"), f"{record.name} (current)"
    else:
        record = deploy.get_version(ws, deploy.parse_version(version))
        adapter_dir, label = ws.root / record.adapter_dir, record.name
    if not (adapter_dir / ADAPTER_FILE).is_file():
        raise ChatError(f"The files of {record.name} are missing from {adapter_dir}.")
    config = read_adapter_config(adapter_dir)
    data_dir = _run_data_dir(ws, record.run_id) or (Path(config["data"]) if config.get("data") else None)
    model = record.model_path or config.get("model") or record.base_model
    return ModelChoice(canonical_model(str(model)), adapter_dir, label, data_dir, record.version, record.run_id)


def _run_choice(ws: Workspace, run) -> ModelChoice:
    model = canonical_model(str(run.model_path or run.base_model))
    return ModelChoice(model, ws.path("runs", run.id, "adapters"), f"run {run.id}", Path(run.data_dir), None, run.id)


def run_choice(ws: Workspace, run_id: str) -> ModelChoice:
    """A training run's adapter on its base model (as the Compare page lists it); ChatError when it has none yet."""
    from engine.training.runs import get_run

    run = get_run(ws, run_id, refresh=False)
    if not run.usable or not (ws.path("runs", run_id, "adapters") / ADAPTER_FILE).is_file():
        raise ChatError(f"Run {run_id} is {run.status} and has no saved adapter yet.")
    return _run_choice(ws, run)


def served_choice(ws: Workspace) -> tuple[ModelChoice, object]:
    """What answers one request now: the canary with its share, else the current version, else the base model.

    Returns the choice and the deploy module's `Served` record, to pass to `record_served` after answering.
    """
    deploy = _versions()
    served = deploy.route_request(ws)
    if served.version is None:
        return base_choice(), served
    choice = version_choice(ws, served.version)
    adapter_dir = served.adapter_dir if served.role == "current" else choice.adapter_dir
    label = f"v{choice.version} ({served.role})"
    return ModelChoice(choice.model, adapter_dir, label, choice.data_dir, choice.version, choice.run_id,
                       served.role), served


def record_served(ws: Workspace, served, ok: bool, latency_ms: float | None) -> str | None:
    """Count a served request for canary statistics (and automatic canary rollback); returns its message."""
    return _versions().record_request(ws, served, ok, latency_ms)


def workspace_choices(ws: Workspace, limit_runs: int = 20) -> list[ModelChoice]:
    """Everything the Compare page can offer: deployed versions, completed runs' adapters, and each distinct
    base model among them plus the default base model (bases first)."""
    adapters: list[ModelChoice] = []
    deploy = None
    try:
        deploy = _versions()
    except ChatError:
        pass
    if deploy is not None:
        current = deploy.current_version(ws)
        for record in deploy.list_versions(ws):
            folder = ws.root / record.adapter_dir
            if not (folder / ADAPTER_FILE).is_file():
                continue
            tag = " (current)" if current and current.version == record.version else f" ({record.status})"
            data_dir = _run_data_dir(ws, record.run_id)
            model = canonical_model(str(record.model_path or record.base_model))
            adapters.append(ModelChoice(model, folder, record.name + tag, data_dir, record.version, record.run_id))
        from engine.training.runs import list_runs

        for run in list_runs(ws, limit=limit_runs):
            if run.usable and (ws.path("runs", run.id, "adapters") / ADAPTER_FILE).is_file():
                adapters.append(_run_choice(ws, run))
    bases: dict[str, ModelChoice] = {}
    for choice in [*adapters, base_choice()]:
        if choice.model not in bases:
            bases[choice.model] = choice.base() if choice.adapter_dir else choice
    return [*bases.values(), *adapters]


@dataclass
class ChatModel:
    """A loaded model: the mlx module, its tokenizer (mlx-lm's TokenizerWrapper) and the prompt layout."""

    choice: ModelChoice
    model: object
    tokenizer: object
    model_path: str
    layout: PromptLayout
    load_seconds: float


def load_chat_model(choice: ModelChoice) -> ChatModel:
    """Load base (+ adapter) with mlx-lm; the default base model is converted once first when needed."""
    started = time.perf_counter()
    model_path = materialize(resolve_base_model(choice.model), log=lambda message: None)
    if choice.adapter_dir is not None:
        read_adapter_config(choice.adapter_dir)
    from mlx_lm import load

    try:
        model, tokenizer = load(model_path, adapter_path=str(choice.adapter_dir) if choice.adapter_dir else None)
    except Exception as exc:  # mlx-lm raises ValueError, FileNotFoundError, OSError... with long messages
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        what = f"{choice.name} on {model_path}" if choice.adapter_dir else model_path
        raise ChatError(f"Loading {what} failed: {first}.") from exc
    return ChatModel(choice, model, tokenizer, model_path, detect_layout(choice.data_dir),
                     time.perf_counter() - started)


def adapter_fingerprint(adapter_dir: Path | None) -> str:
    """Changes whenever the adapter files change (e.g. versions/active after a rollback), so the cache reloads."""
    if adapter_dir is None:
        return ""
    parts = []
    for name in (ADAPTER_FILE, ADAPTER_CONFIG):
        try:
            stat = (adapter_dir / name).stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}")
        except FileNotFoundError:
            parts.append(f"{name}:missing")
    return "|".join(parts)


_MLX_EXECUTOR: ThreadPoolExecutor | None = None
_MLX_EXECUTOR_LOCK = threading.Lock()


def mlx_thread() -> ThreadPoolExecutor:
    """The one thread that does a server's mlx work (loads, warming and generation). mlx keeps streams per thread
    (a stream context opened on one thread cannot be closed on another), while Streamlit runs every rerun on a
    new thread; so pages hand mlx work to this thread and read its results."""
    global _MLX_EXECUTOR
    with _MLX_EXECUTOR_LOCK:
        if _MLX_EXECUTOR is None:
            _MLX_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")
        return _MLX_EXECUTOR


def on_mlx_thread(function, *args):
    """Run `function(*args)` on the mlx thread and return its result (directly when already there)."""
    if threading.current_thread().name.startswith("mlx"):
        return function(*args)
    return mlx_thread().submit(function, *args).result()


class ModelCache:
    """Up to `max_models` loaded models, least recently used evicted first; thread-safe; one load per key.

    It remembers how long each model took to load (an estimate for the next load's progress line) and can load
    models in the background (`warm`), so the server keeps the models a person is about to use ready."""

    def __init__(self, max_models: int = 4, mlx_thread: bool = False):
        """`mlx_thread`: load on the process's one mlx thread (the server, whose pages generate there through
        `interleave_on_mlx_thread`); otherwise load on the caller's thread, where a CLI verb or a script then
        generates (mlx-lm's generation stream belongs to the thread that first imported it)."""
        self.max_models = max_models
        self.mlx_thread = mlx_thread
        self._models: OrderedDict[tuple, ChatModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self._load_started: dict[tuple, float] = {}
        self._load_seconds: dict[tuple, float] = {}
        self._warming: threading.Thread | None = None
        self._warm_queue: list[ModelChoice] = []

    @staticmethod
    def key(choice: ModelChoice) -> tuple:
        adapter = str(choice.adapter_dir) if choice.adapter_dir else ""
        return (choice.model, adapter, adapter_fingerprint(choice.adapter_dir))

    @staticmethod
    def _estimate_key(choice: ModelChoice) -> tuple:
        return (choice.model, choice.adapter_dir is not None)

    def cached(self, choice: ModelChoice) -> bool:
        with self._lock:
            return self.key(choice) in self._models

    def loading_since(self, choice: ModelChoice) -> float | None:
        """When the load of this choice started (time.time()), while one is under way; else None."""
        with self._lock:
            return self._load_started.get(self.key(choice))

    def load_estimate(self, choice: ModelChoice) -> float | None:
        """Seconds the last load of this base model (with or without an adapter) took, or None before the first."""
        with self._lock:
            return self._load_seconds.get(self._estimate_key(choice))

    def get(self, choice: ModelChoice) -> ChatModel:
        key = self.key(choice)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._as(self._models[key], choice)
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    return self._as(self._models[key], choice)
                self._load_started[key] = time.time()
            try:
                loaded = on_mlx_thread(load_chat_model, choice) if self.mlx_thread else load_chat_model(choice)
            finally:
                with self._lock:
                    self._load_started.pop(key, None)
            with self._lock:
                self._models[key] = loaded
                self._models.move_to_end(key)
                self._load_seconds[self._estimate_key(choice)] = loaded.load_seconds
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
            return loaded

    def warm(self, choices: list[ModelChoice]) -> None:
        """Load these models in a background thread, one after the other, unless already loaded or queued. A load
        that fails is left for the page to report when it asks for the model. Only for a cache that loads on the
        mlx thread: a model loaded on the warming thread could not generate anywhere else."""
        if not self.mlx_thread:
            raise ValueError("ModelCache.warm needs ModelCache(mlx_thread=True): models warmed in the background "
                             "are loaded on the mlx thread, where the pages generate")
        with self._lock:
            for choice in choices:
                if self.key(choice) not in self._models and choice not in self._warm_queue:
                    self._warm_queue.append(choice)
            if not self._warm_queue or self._warming is not None:
                return
            self._warming = threading.Thread(target=self._warm_all, name="warm-models", daemon=True)
            self._warming.start()

    def _warm_all(self) -> None:
        while True:
            with self._lock:
                if not self._warm_queue:
                    self._warming = None  # under the lock: a choice queued from now on starts a new thread
                    return
                choice = self._warm_queue.pop(0)
            try:
                self.get(choice)
            except StudioError:
                continue

    @staticmethod
    def _as(loaded: ChatModel, choice: ModelChoice) -> ChatModel:
        """The cached weights under another label or training data (its own prompt layout); no reload."""
        if loaded.choice == choice:
            return loaded
        layout = loaded.layout if loaded.choice.data_dir == choice.data_dir else detect_layout(choice.data_dir)
        return ChatModel(choice, loaded.model, loaded.tokenizer, loaded.model_path, layout, 0.0)

    def __len__(self) -> int:
        return len(self._models)


def openblas_note() -> str | None:
    """On Linux, a sentence saying this process generates without OpenBLAS although it is installed (mlx's own
    CPU BLAS is about 2x slower for generation, STACK.md), with the way to start it faster; else None."""
    library = openblas_library()
    if library is None or "openblas" in os.environ.get("LD_PRELOAD", ""):
        return None
    return (f"This process generates without OpenBLAS; start the app with LD_PRELOAD={library} for faster answers "
            f"on this CPU.")


def reexec_with_openblas() -> None:
    """When run as `python -m engine ...` on Linux without OpenBLAS preloaded, start again with it preloaded
    (mlx binds its BLAS when it loads, so only a new process can switch). Does nothing in any other case."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "__main__.py" or script.parent.name != "engine":
        return
    library = openblas_library()
    if library is None or "openblas" in os.environ.get("LD_PRELOAD", "") or os.environ.get("STUDIO_NO_REEXEC"):
        return
    env = dict(os.environ, STUDIO_NO_REEXEC="1")
    preload_openblas(env)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "engine", *sys.argv[1:]], env)
