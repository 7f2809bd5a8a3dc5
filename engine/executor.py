"""Where the heavy, embarrassingly parallel steps run: in this process (`local`, the default) or on a Ray cluster.

The executor only moves data between steps (as datatrove's executors do): every step is a pure, module-level
function of its inputs, the same function on either executor, and every workspace write stays in the driver, so
the pairs, confidences and findings are byte-identical whichever executor ran them.

- `map_batches(fn, items, batch_size)` applies `fn(list) -> list of the same length` to consecutive batches and
  returns the results in input order. Local: a loop, lazily (`imap_batches`); Ray: a Ray Data pipeline
  (`from_items` -> `map_batches` on the cluster's CPUs), results sorted back into input order on the driver.
- `stream_tasks(fn, arguments)` runs `fn(*args)` for each argument tuple and yields the results in order.
  Local: called one by one, lazily, so a reader that returns a generator still streams; Ray: one Ray task per
  tuple, all submitted at once (the reading of many screenpipe databases and repositories, which are few and
  uneven: tasks, not a dataset), each generator drained to a list in its worker.

`open_executor(name, address)` starts or joins Ray only for `ray`; the local executor never imports it.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import StudioError

EXECUTORS = ("local", "ray")
# Ray's smallest object store is 75 MiB; a driver that starts its own local Ray gets this unless told otherwise.
RAY_OBJECT_STORE_BYTES = int(os.environ.get("STUDIO_RAY_OBJECT_STORE_MB", "256")) * 1024 * 1024


class ExecutorError(StudioError):
    """The chosen executor cannot run here as configured."""


def _batches(items: Sequence, batch_size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, batch_size)):
        yield list(items[start:start + batch_size])


class LocalExecutor:
    """Everything in this process, in order; nothing is imported beyond the step itself."""

    name = "local"
    workers = 1

    def imap_batches(self, fn: Callable[[list], list], items: Sequence, batch_size: int) -> Iterator[list]:
        """Each batch's results as soon as it is computed (a caller can store and report progress per batch)."""
        for batch in _batches(items, batch_size):
            yield fn(batch)

    def map_batches(self, fn: Callable[[list], list], items: Sequence, batch_size: int) -> list:
        return [result for batch in self.imap_batches(fn, items, batch_size) for result in batch]

    def stream_tasks(self, fn: Callable[..., Any], arguments: Iterable[tuple]) -> Iterator[Any]:
        for args in arguments:
            yield fn(*args)

    def close(self) -> None:
        """Nothing to release."""


def _run_batch(batch: dict, fn_bytes: bytes) -> dict:
    """The Ray Data UDF: unpickle the step and its items, apply it, pickle the results (a step's inputs and
    outputs are arbitrary Python values; Arrow columns of bytes carry them unchanged)."""
    import numpy as np

    fn = pickle.loads(fn_bytes)
    items = [pickle.loads(item) for item in batch["item"]]
    results = fn(items)
    if len(results) != len(items):
        raise AssertionError(f"a batch step returned {len(results)} results for {len(items)} items")
    return {"position": np.asarray(batch["position"]),
            "result": np.array([pickle.dumps(result, protocol=5) for result in results], dtype=object)}


def _drain(fn: Callable[..., Any], args: tuple) -> Any:
    """Run a task in a Ray worker; what streams locally (a generator, or a result with `drained()`, such as a
    source reading) is read to the end there, since a generator cannot travel back to the driver."""
    result = fn(*args)
    if hasattr(result, "drained"):
        return result.drained()
    if isinstance(result, Iterator):
        return list(result)
    return result


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A host:port that nothing answers on is refused at once (ray.init would retry for minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"The Ray address {address!r} is not host:port; give e.g. head-node:6379 (the address "
                            "`ray start --head` prints) or auto.")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise ExecutorError(f"No Ray cluster answers at {address} ({exc.strerror or type(exc).__name__}); start one "
                            "with `ray start --head` there, or check --ray-address.") from None


class RayExecutor:
    """The same steps on a Ray cluster: `address` None starts a private local Ray on this machine, "auto" or
    "host:port" joins a running cluster (`ray start --head`)."""

    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ExecutorError("The ray executor needs Ray: install it with `pip install 'ray[data]==2.60.0'` "
                                "(requirements.txt pins it), or run with --executor local.") from None
        self._ray = ray
        self._owned = not ray.is_initialized()
        address = address or os.environ.get("RAY_ADDRESS", "").strip() or None  # as ray.init itself would
        if self._owned:
            # Workers import `engine` from the driver's checkout: on one machine it is on their path already; on a
            # real cluster the package travels with the job (a few MB), so nodes need only the dependencies.
            package = str(Path(__file__).resolve().parent)
            runtime_env = {"py_modules": [package]} if address else None
            options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                       "include_dashboard": False, "runtime_env": runtime_env}
            if address:
                _check_reachable(address)
                options["address"] = address
            else:
                options["object_store_memory"] = RAY_OBJECT_STORE_BYTES
            try:
                ray.init(**{key: value for key, value in options.items() if value is not None})
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ExecutorError(f"Ray could not start or join a cluster at {address or 'this machine'} "
                                    f"({first_line[:160]}); check --ray-address (e.g. auto, or host:6379 of "
                                    "`ray start --head`).") from None
        from ray.data import DataContext

        # the CLI draws its own progress; Ray Data's bars and per-pipeline notices would interleave with it
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map_batches(self, fn: Callable[[list], list], items: Sequence, batch_size: int) -> list:
        if not items:
            return []
        ray = self._ray
        rows = [{"position": index, "item": pickle.dumps(item, protocol=5)} for index, item in enumerate(items)]
        # as many blocks as there are batches, so every CPU of the cluster gets work even for a small job
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(items) // max(1, batch_size))))
        mapped = dataset.map_batches(_run_batch, fn_args=(pickle.dumps(fn, protocol=5),), batch_size=batch_size,
                                     batch_format="numpy", num_cpus=1)
        results: list[Any] = [None] * len(items)
        for row in mapped.iter_rows():
            results[int(row["position"])] = pickle.loads(row["result"])
        return results

    def imap_batches(self, fn: Callable[[list], list], items: Sequence, batch_size: int) -> Iterator[list]:
        results = self.map_batches(fn, items, batch_size)
        yield from _batches(results, batch_size)

    def stream_tasks(self, fn: Callable[..., Any], arguments: Iterable[tuple]) -> Iterator[Any]:
        remote = self._ray.remote(num_cpus=1)(_drain)
        pending = [remote.remote(fn, args) for args in arguments]
        for reference in pending:
            yield self._ray.get(reference)

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()


Executor = LocalExecutor | RayExecutor


def executor_choice(config, name: str | None = None, address: str | None = None) -> tuple[str, str | None]:
    """The executor to use: the flag, else the config's `executor.name`, else local; for ray, the address flag,
    else the config's `executor.ray_address` (None: a private Ray on this machine, or $RAY_ADDRESS as Ray reads it).
    """
    chosen = name or (config.get("executor.name") if config is not None else None) or "local"
    if chosen not in EXECUTORS:
        raise ExecutorError(f"The executor is one of {', '.join(EXECUTORS)}; got {chosen!r}.")
    if chosen == "local":
        if address:
            raise ExecutorError("--ray-address applies only to --executor ray; drop it or add --executor ray.")
        return chosen, None
    return chosen, address or (config.get("executor.ray_address") if config is not None else None) or None


@contextmanager
def open_executor(name: str = "local", address: str | None = None) -> Iterator[Executor]:
    """The executor for one CLI run; a Ray this run started is shut down at the end."""
    if name not in EXECUTORS:
        raise ExecutorError(f"The executor is one of {', '.join(EXECUTORS)}; got {name!r}.")
    if name == "local":
        yield LocalExecutor()
        return
    executor = RayExecutor(address)
    try:
        yield executor
    finally:
        executor.close()


def add_executor_arguments(parser) -> None:
    """--executor and --ray-address, as extract, link and validate take them."""
    parser.add_argument("--executor", choices=EXECUTORS, help="where the heavy steps run: local (this process, the "
                        "default) or ray (a Ray cluster; default: the config's executor.name)")
    parser.add_argument("--ray-address", help="the Ray cluster to join (auto, or host:port of `ray start --head`); "
                        "without it --executor ray starts a private Ray on this machine")


LOCAL = LocalExecutor()
