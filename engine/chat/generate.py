"""Streaming generation for chat and compare: tokens as they come, with temperature, top-p, max tokens and a
system prompt, laid out as the adapter's training data was (engine.chat.layout).

`stream_answer(chat_model, prompt, settings)` returns an `AnswerStream`: iterate it for text pieces; when it is
exhausted `.text` holds the answer and `.stats` its timings. It drives mlx-lm's own `stream_generate`, so its
speed is mlx-lm's. `interleave(streams)` advances several streams in turn on one thread, so two columns fill at
once without two threads sharing mlx.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from engine.chat.layout import render_prompt
from engine.chat.models import ChatModel
from engine.errors import StudioError

MAX_TOKENS_LIMIT = 4096


@dataclass(frozen=True)
class GenerationSettings:
    """temperature 0 is greedy (deterministic); top_p 1 keeps every token; seed fixes sampling."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    system_prompt: str | None = None
    seed: int | None = 0

    def validated(self) -> GenerationSettings:
        if not 0 <= self.temperature <= 5:
            raise StudioError(f"temperature must be between 0 and 5, not {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise StudioError(f"top-p must be above 0 and at most 1, not {self.top_p}.")
        if not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise StudioError(f"max tokens must be between 1 and {MAX_TOKENS_LIMIT}, not {self.max_tokens}.")
        return self


@dataclass
class GenerationStats:
    """Timings of one answer. `first_token_seconds` and `total_seconds` are wall-clock: what a person waits.
    `tokens_per_second` is the decode rate: tokens after the first over the time this model spent producing them
    (`busy_seconds` counts only time inside this stream, so two streams taking turns each report their own rate;
    mlx evaluates the next token asynchronously, so while two stream the split between them is approximate)."""

    prompt_tokens: int = 0
    tokens: int = 0
    first_token_seconds: float | None = None
    total_seconds: float = 0.0
    busy_seconds: float = 0.0
    tokens_per_second: float | None = None
    prompt_tokens_per_second: float | None = None
    finish_reason: str | None = None
    peak_memory_gb: float | None = None

    def summary(self) -> str:
        if not self.tokens:
            return f"no tokens in {self.total_seconds:.2f} s"
        rate = f"{self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else "rate n/a (one token)"
        return (f"{self.tokens} tokens · {rate} · first token {self.first_token_seconds:.2f} s · "
                f"total {self.total_seconds:.2f} s")

    def to_dict(self) -> dict:
        return asdict(self)


class AnswerStream:
    """One answer being generated. Iterate for text pieces; afterwards read `.text` and `.stats`."""

    def __init__(self, chat_model: ChatModel, prompt_text: str, settings: GenerationSettings):
        self.chat_model = chat_model
        self.prompt_text = prompt_text
        self.settings = settings
        self.text = ""
        self.stats = GenerationStats()
        self.done = False
        self._iterator: Iterator[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def _run(self) -> Iterator[str]:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        settings = self.settings
        if settings.temperature > 0 and settings.seed is not None:
            mx.random.seed(settings.seed)
        top_p = settings.top_p if settings.top_p < 1 else 0.0  # mlx-lm: 0 disables top-p
        sampler = make_sampler(temp=settings.temperature, top_p=top_p)
        tokenizer = self.chat_model.tokenizer
        started = resumed = time.perf_counter()
        busy = 0.0  # time spent inside this generator: not the caller's, nor another stream's turn
        busy_at_first = None
        response = None
        for response in stream_generate(self.chat_model.model, tokenizer, self.prompt_text,
                                        max_tokens=settings.max_tokens, sampler=sampler):
            if busy_at_first is None:
                now = time.perf_counter()
                busy_at_first = busy + now - resumed
                self.stats.first_token_seconds = now - started
                self.stats.prompt_tokens = response.prompt_tokens
                self.stats.prompt_tokens_per_second = response.prompt_tps
            if response.finish_reason != "stop" or response.token not in tokenizer.eos_token_ids:
                self.stats.tokens = response.generation_tokens
            if response.text:
                self.text += response.text
                busy += time.perf_counter() - resumed
                yield response.text
                resumed = time.perf_counter()
        ended = time.perf_counter()
        busy += ended - resumed
        self.stats.total_seconds = ended - started
        self.stats.busy_seconds = busy
        if response is not None:
            self.stats.finish_reason = response.finish_reason
            self.stats.peak_memory_gb = response.peak_memory
            if self.stats.tokens > 1 and busy_at_first is not None and busy > busy_at_first:
                self.stats.tokens_per_second = (self.stats.tokens - 1) / (busy - busy_at_first)
        self.done = True

    def consume(self) -> AnswerStream:
        """Generate to the end (for callers that do not stream); returns self."""
        for _ in self:
            pass
        return self


def stream_answer(chat_model: ChatModel, prompt: str, settings: GenerationSettings | None = None,
                  history: list[dict] | None = None, raw: bool = False) -> AnswerStream:
    """Lay out `prompt` for this model (unless `raw`) and return the stream that will answer it."""
    settings = (settings or GenerationSettings()).validated()
    if not prompt.strip():
        raise StudioError("The prompt is empty; type a question or pick an example prompt.")
    text = prompt if raw else render_prompt(chat_model.tokenizer, chat_model.layout, prompt,
                                            settings.system_prompt, history)
    return AnswerStream(chat_model, text, settings)


def generate_answer(chat_model: ChatModel, prompt: str, settings: GenerationSettings | None = None,
                    history: list[dict] | None = None, raw: bool = False) -> AnswerStream:
    """The whole answer at once (a consumed AnswerStream with `.text` and `.stats`)."""
    return stream_answer(chat_model, prompt, settings, history, raw).consume()


def interleave_on_mlx_thread(streams: list[AnswerStream], cancel: threading.Event | None = None,
                             ) -> Iterator[tuple[int, str]]:
    """`interleave(streams)` run on the process's mlx thread (engine.chat.models.mlx_thread), its pieces handed
    to the caller's thread as they come; setting `cancel` stops the generation after the current token."""
    from engine.chat.models import mlx_thread

    pieces: queue.Queue = queue.Queue()
    finished = object()

    def produce() -> None:
        try:
            for item in interleave(streams):
                pieces.put(item)
                if cancel is not None and cancel.is_set():
                    break
        except BaseException as exc:  # handed to the caller's thread, which raises it
            pieces.put(exc)
        finally:
            pieces.put(finished)

    mlx_thread().submit(produce)
    while (item := pieces.get()) is not finished:
        if isinstance(item, BaseException):
            raise item
        yield item


def interleave(streams: list[AnswerStream]) -> Iterator[tuple[int, str]]:
    """Advance the streams in turn, yielding (stream index, text piece) until all are done.

    mlx-lm's generator holds an `mx.stream` context open between tokens; advancing two of them in turn exits
    those contexts out of order, so the default stream is put back as it was afterwards.
    """
    import mlx.core as mx

    device = mx.default_device()
    default_stream = mx.default_stream(device)
    iterators = {index: iter(stream) for index, stream in enumerate(streams)}
    try:
        while iterators:
            for index in list(iterators):
                try:
                    piece = next(iterators[index])
                except StopIteration:
                    del iterators[index]
                    continue
                yield index, piece
    finally:
        mx.set_default_stream(default_stream)
