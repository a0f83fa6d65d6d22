"""GGUF models run in-process by llama-cpp-python: the embedded Gemma 3 270M or any file.

Model strings:

* ``local:gemma-3-270m`` (and plain ``local``): the embedded model, assembled on first use
  (see :func:`ensure_embedded_model`);
* ``local:/path/to/model.gguf`` (anything with a ``/`` or ending in ``.gguf``): that file;
* ``local:default``, or the file name or stem of the ``model`` setting (``local:qwen`` for
  ``model="/models/qwen.gguf"``): the file configured in ``providers={'local': {'model': ...}}``,
  or the embedded model when none is configured. ``local:gemma-3-270m`` always means the
  embedded model, so it stays a dependable last fallback.

Each model is loaded once per provider instance (one per client) and kept until ``close()``.
A ``Llama`` object is not thread-safe, so each loaded model has one lock, held for the whole
generation (stream iteration included); concurrent calls queue for it, and the time spent
queueing is reported as ``latency.queued_s``. Async calls run on one worker thread per model,
so waiting never blocks the event loop or fills the default executor.

Defaults: ``temperature`` 0.2 when a request gives none (llama-cpp-python's chat default; small
base models wander at higher temperatures), ``top_p`` 0.95, and ``max_tokens`` 512 (the
``max_tokens`` setting; None means whatever room the context window leaves). Prompt tokens
plus ``max_tokens`` beyond ``n_ctx`` raise ContextLengthError before anything is generated.
Usage comes from the model's own tokenizer, streams included (``usage.source == "tokenizer"``).
JSON output (``json_object``/``json_schema``) is enforced by a llama.cpp grammar; a small model
may still run into max_tokens, in which case finish_reason is "length" and the JSON incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from llmos._log import get_logger
from llmos.errors import (
    APITimeoutError,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    LLMOSError,
    ServerError,
)
from llmos.providers._chat_wire import normalise_finish_reason
from llmos.providers._embedded import (
    EMBEDDED_MODEL,
    check_gguf,
    default_cache_dir,
    embedded_model_ready,
    ensure_embedded_model,
    load_llama,
    logical_cpus,
    physical_cores,
)
from llmos.providers._templates import AnswerText, Prompt, PromptFormat, choose_format
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    Latency,
    StreamEvent,
    TokenCount,
    Usage,
)

__all__ = [
    "LocalProvider",
    "LocalSettings",
    "default_cache_dir",
    "embedded_model_ready",
    "ensure_embedded_model",
    "logical_cpus",
    "physical_cores",
]

log = get_logger("local")

#: llama.cpp sampling options a request may set through ``extra_body``, with their defaults.
SAMPLING_DEFAULTS: dict[str, float] = dict(
    top_k=40, min_p=0.05, typical_p=1.0, repeat_penalty=1.0, presence_penalty=0.0,
    frequency_penalty=0.0, tfs_z=1.0, mirostat_mode=0, mirostat_tau=5.0, mirostat_eta=0.1,
)  # fmt: skip
_OWN_LLAMA_ARGS = frozenset(
    {"model_path", "n_ctx", "n_threads", "n_threads_batch", "n_gpu_layers", "seed", "verbose"}
)
#: Streaming and grammar-enforced JSON; no tools, embeddings or logprobs.
_CAPS = Capabilities(
    json_schema=True,
    json_object=True,
    needs_key=False,
    runs_offline=True,
    notes=(
        "JSON is enforced by a llama.cpp grammar; output cut by max_tokens is incomplete",
        "logprobs need logits_all (n_ctx x vocabulary floats), so they are not offered",
    ),
)


class LocalSettings(ProviderSettings):
    """Settings of the local provider (``providers={'local': {...}}``)."""

    #: The GGUF file meant by ``local:default`` (and by its own name or stem).
    model: str | None = None
    #: Context window in tokens; 0 takes the model's trained length (can use a lot of memory).
    n_ctx: int = Field(default=4096, ge=0)
    #: Generation threads; None means the number of physical cores this process may use.
    n_threads: int | None = Field(default=None, ge=1)
    #: Prompt-processing threads; None means every logical CPU this process may use.
    n_threads_batch: int | None = Field(default=None, ge=1)
    #: Layers offloaded to a GPU (-1: all). Ignored with a warning on CPU-only builds.
    n_gpu_layers: int = Field(default=0, ge=-1)
    #: Seed for calls that give none; None draws a fresh seed per call.
    seed: int | None = None
    #: Let llama.cpp print its own logs to stderr (else they go to the llmos.local.llama_cpp
    #: logger at debug level).
    verbose: bool = False
    #: Where the embedded model is assembled (default: $LLMOS_CACHE_DIR/models or
    #: ~/.cache/llmos/models).
    cache_dir: str | None = None
    #: Prompt format: None/"auto", "gguf", "transcript", or a llama-cpp-python format name.
    chat_format: str | None = None
    #: Temperature for requests that give none.
    temperature: float = Field(default=0.2, ge=0, le=2)
    #: max_tokens for requests that give none; None fills what the context window leaves.
    max_tokens: int | None = Field(default=512, ge=1)
    #: Further keyword arguments for ``llama_cpp.Llama`` (flash_attn, use_mlock, n_batch, ...).
    llama_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("llama_kwargs")
    @classmethod
    def _no_shadowing(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(_OWN_LLAMA_ARGS & set(value))
        if clash:
            raise ValueError(f"set {', '.join(clash)} as settings of their own, not llama_kwargs")
        return value


@dataclass
class _Loaded:
    """One loaded model and the lock that serialises its use."""

    llm: Any  # llama_cpp.Llama (typed loosely: llama_cpp is imported lazily)
    path: Path
    fmt: PromptFormat
    n_ctx: int
    is_eog: Callable[[int], bool]  # whether a token id ends the generation
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Plan:
    """Everything one generation needs, decided before the model lock is taken."""

    model: str
    prompt: Prompt
    max_tokens: int
    seed: int
    stop: tuple[bytes, ...]
    #: Keyword arguments of ``Llama.generate``: temp, top_p, grammar and SAMPLING_DEFAULTS.
    sampling: dict[str, Any]


@dataclass
class _Run:
    """What a generation produced besides text (``raw_finish``: eos, stop or length)."""

    prompt_tokens: int
    queued: float
    completion_tokens: int = 0
    raw_finish: str = "length"


class LocalProvider(Provider):
    """llama-cpp-python in-process: the embedded Gemma 3 270M or any GGUF file, on CPU or GPU."""

    kind: ClassVar[str] = "local"
    description: ClassVar[str] = "GGUF models in-process via llama-cpp-python (embedded Gemma 3)"
    settings_class: ClassVar[type[ProviderSettings]] = LocalSettings
    known_models: ClassVar[tuple[str, ...]] = (EMBEDDED_MODEL,)
    needs_key: ClassVar[bool] = False

    settings: LocalSettings

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        if not isinstance(settings, LocalSettings):
            settings = LocalSettings.model_validate(settings.model_dump(exclude_unset=True))
        super().__init__(name, settings)
        self._models: dict[str, _Loaded] = {}  # resolved path -> model
        self._by_name: dict[str, _Loaded] = {}  # model string -> model
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._load_lock = threading.Lock()
        self._executors_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalProvider(name={self.name!r}, models={sorted(self._by_name)!r})"

    # ------------------------------------------------------------------ models

    def capabilities(self, model: str) -> Capabilities:
        """Streaming and grammar-enforced JSON; no tools, embeddings or logprobs."""
        loaded = self._by_name.get(model)
        window = loaded.n_ctx if loaded is not None else (self.settings.n_ctx or None)
        return _CAPS.with_(context_window=window)

    def resolve(self, model: str) -> Path:
        """The GGUF file a model string means (assembling the embedded model if needed)."""
        name = model.strip()
        configured = self.settings.model
        aliases = ("default", Path(configured).name, Path(configured).stem) if configured else ()
        if configured and name in aliases and name != EMBEDDED_MODEL:  # that one never moves
            name = configured
        elif name == "default":
            name = EMBEDDED_MODEL
        if name == EMBEDDED_MODEL:
            return ensure_embedded_model(cache_dir=self.settings.cache_dir)
        if "/" in name or "\\" in name or name.endswith(".gguf") or name.startswith("~"):
            path = Path(name).expanduser()
            check_gguf(path)
            return path
        raise ConfigurationError(
            f"unknown local model {model!r}: use 'local:{EMBEDDED_MODEL}' (the embedded model), "
            "'local:/path/to/model.gguf', or set providers={'local': {'model': "
            "'/path/to/model.gguf'}} and call 'local:default'",
            provider=self.name,
            model=model,
        )

    def _model(self, model: str) -> _Loaded:
        loaded = self._by_name.get(model)
        if loaded is not None:
            return loaded
        with self._load_lock:
            loaded = self._by_name.get(model)
            if loaded is None:
                path = self.resolve(model)
                key = str(path.resolve())
                loaded = self._models.get(key)
                if loaded is None:
                    loaded = self._load(path, model)
                    self._models[key] = loaded
                self._by_name[model] = loaded
            return loaded

    def _load(self, path: Path, model: str) -> _Loaded:
        s = self.settings
        seed = {} if s.seed is None else {"seed": s.seed & 0xFFFFFFFF}
        llm, is_eog = load_llama(
            path,
            provider=self.name,
            model=model,
            n_ctx=s.n_ctx,
            n_threads=s.n_threads,
            n_threads_batch=s.n_threads_batch,
            n_gpu_layers=s.n_gpu_layers,
            verbose=s.verbose,
            **s.llama_kwargs,
            **seed,
        )
        fmt = choose_format(llm, s.chat_format)
        log.debug("%s: prompt format %s", path.name, fmt.name)
        return _Loaded(llm, path, fmt, llm.n_ctx(), is_eog)

    # ------------------------------------------------------------------ planning

    def prompt_text(self, request: ChatRequest) -> str:
        """The exact prompt text the model sees for ``request`` (for debugging templates)."""
        with self._errors(request.model):
            text = self._model(request.model).fmt.render(request.messages).text
        return text

    def count_prompt_tokens(self, request: ChatRequest) -> TokenCount:
        """Prompt tokens counted by the model's tokenizer: equal to the call's prompt_tokens."""
        with self._errors(request.model):
            loaded = self._model(request.model)
            tokens = len(loaded.fmt.render(request.messages).tokens)
        return TokenCount(tokens=tokens, method="exact", tokenizer=f"llama.cpp:{loaded.path.name}")

    @contextlib.contextmanager
    def session(self, model: str) -> Iterator[tuple[Any, PromptFormat]]:
        """Direct use of a loaded model (e.g. scoring a text): its ``llama_cpp.Llama`` and prompt
        format, with its lock held. Its evaluation state is reset after, so later generations
        never reuse tokens evaluated here."""
        loaded = self._model(model)
        with loaded.lock:
            try:
                yield loaded.llm, loaded.fmt
            finally:
                loaded.llm.reset()

    def _plan(self, request: ChatRequest) -> tuple[_Loaded, _Plan]:
        self.check(request)
        loaded = self._model(request.model)
        prompt = loaded.fmt.render(request.messages)
        n_prompt, n_ctx = len(prompt.tokens), loaded.n_ctx
        room, wanted = n_ctx - n_prompt, request.max_tokens
        if (wanted or 1) > room:
            fix = f", set max_tokens to {room} or less" if wanted and room > 0 else ""
            raise ContextLengthError(
                f"the prompt has {n_prompt} tokens"
                + (f" and max_tokens is {wanted}" if wanted else "")
                + f": more than the {n_ctx}-token context window of {self.name}:{request.model}"
                + f"; shorten the prompt{fix}, or raise n_ctx "
                f"(providers={{'{self.name}': {{'n_ctx': ...}}}})",
                field="max_tokens" if wanted else "messages",
                provider=self.name,
                model=request.model,
            )
        max_tokens = wanted or min(self.settings.max_tokens or room, room)
        stops = dict.fromkeys((*prompt.stop, *(request.stop or ())))
        seed = request.seed if request.seed is not None else self.settings.seed
        return loaded, _Plan(
            model=request.model,
            prompt=prompt,
            max_tokens=max_tokens,
            seed=(random.getrandbits(32) if seed is None else seed) & 0xFFFFFFFF,
            stop=tuple(s.encode("utf-8") for s in stops),
            sampling=self._sampling(request),
        )

    def _grammar(self, request: ChatRequest) -> Any:
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if fmt.type == "json_schema" and fmt.json_schema is not None:
                return LlamaGrammar.from_json_schema(json.dumps(fmt.json_schema), verbose=False)
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        except Exception as exc:  # the schema converter raises several types
            raise InvalidRequestError(
                f"response_format: llama.cpp cannot turn this JSON schema into a grammar ({exc}); "
                "simplify the schema or use response_format='json'",
                field="response_format",
                provider=self.name,
                model=request.model,
            ) from None

    def _sampling(self, request: ChatRequest) -> dict[str, Any]:
        temperature = request.temperature
        sampling: dict[str, Any] = {
            "temp": self.settings.temperature if temperature is None else temperature,
            "top_p": 0.95 if request.top_p is None else request.top_p,
            "grammar": self._grammar(request),
            **SAMPLING_DEFAULTS,
        }
        for key, value in request.extra_body.items():
            default = SAMPLING_DEFAULTS.get(key)
            if default is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRequestError(
                    f"extra_body.{key}: the local provider takes only numeric llama.cpp sampling "
                    f"options there ({', '.join(SAMPLING_DEFAULTS)})",
                    field=f"extra_body.{key}",
                    provider=self.name,
                    model=request.model,
                )
            sampling[key] = type(default)(value)
        return sampling

    # ------------------------------------------------------------------ generation

    def _acquire(self, loaded: _Loaded, ctx: CallContext, request: ChatRequest) -> float:
        """Take the model's lock within the call's deadline; returns the seconds waited."""
        started = time.perf_counter()
        remaining = ctx.deadline.remaining()
        if not loaded.lock.acquire(timeout=-1 if remaining is None else remaining):
            raise APITimeoutError(
                f"the call's deadline passed while waiting {remaining:.1f} s for "
                f"{self.name}:{request.model}, which was busy with other calls",
                provider=self.name,
                model=request.model,
            )
        return time.perf_counter() - started

    def _decode(
        self,
        loaded: _Loaded,
        plan: _Plan,
        ctx: CallContext,
        run: _Run,
        cancel: threading.Event | None,
    ) -> Generator[str, None, None]:
        """Generate text pieces; the caller holds the model lock."""
        llm, is_eog, deadline = loaded.llm, loaded.is_eog, ctx.deadline
        detokenize, max_tokens = llm.detokenize, plan.max_tokens
        answer = AnswerText(plan.prompt, plan.stop)
        llm.set_seed(plan.seed)
        tokens = llm.generate(plan.prompt.tokens, **plan.sampling)
        try:
            for token in tokens:
                if is_eog(token):
                    run.raw_finish = "eos"
                    break
                run.completion_tokens += 1
                text = answer.feed(detokenize([token]))
                if text:
                    yield text
                if answer.stopped:
                    run.raw_finish = "stop"
                    return
                if run.completion_tokens >= max_tokens:
                    break
                if cancel is not None and cancel.is_set():
                    return
                if deadline.at is not None and deadline.expired():
                    raise APITimeoutError(
                        f"the call's deadline passed after {run.completion_tokens} generated "
                        "tokens; allow more time (timeout=...) or lower max_tokens",
                        provider=self.name,
                        model=plan.model,
                    )
            text = answer.end()
            if text:
                yield text
        finally:
            tokens.close()

    @contextlib.contextmanager
    def _errors(self, model: str) -> Iterator[None]:
        """Turn anything but an llmos error raised inside into a ServerError."""
        try:
            yield
        except LLMOSError:
            raise
        except Exception as exc:
            # Context overflows are refused before generating: what is left is llama.cpp failing.
            raise ServerError(
                f"llama.cpp failed: {type(exc).__name__}: {exc}", provider=self.name, model=model
            ) from exc

    @contextlib.contextmanager
    def _generation(
        self, request: ChatRequest, ctx: CallContext, cancel: threading.Event | None, waited: float
    ) -> Iterator[tuple[Iterator[str], _Run]]:
        """One generation's text pieces and its record, with the model locked (streams and whole
        answers share it, so their texts are equal); failures become llmos errors."""
        with self._errors(request.model):
            loaded, plan = self._plan(request)
            queued = waited + self._acquire(loaded, ctx, request)
            run = _Run(prompt_tokens=len(plan.prompt.tokens), queued=queued)
            pieces = self._decode(loaded, plan, ctx, run, cancel)
            try:
                yield pieces, run
            finally:
                pieces.close()  # stops llama.cpp's generator while the lock is still held
                loaded.lock.release()

    def _response(self, request: ChatRequest, run: _Run, text: str) -> ChatResponse:
        return ChatResponse(
            id=f"local-{uuid.uuid4().hex[:16]}",
            provider=self.name,
            model=request.model,
            target=f"{self.name}:{request.model}",
            message=AssistantMessage(content=text),
            finish_reason=normalise_finish_reason(run.raw_finish),
            raw_finish_reason=run.raw_finish,
            usage=Usage(
                prompt_tokens=run.prompt_tokens,
                completion_tokens=run.completion_tokens,
                source="tokenizer",
            ),
            latency=Latency(queued_s=run.queued),
        )

    def chat(
        self,
        request: ChatRequest,
        ctx: CallContext,
        cancel: threading.Event | None = None,
        waited: float = 0.0,
    ) -> ChatResponse:
        """One generation, whole. ``cancel`` stops it early; ``waited`` is queueing so far."""
        with self._generation(request, ctx, cancel, waited) as (pieces, run):
            text = "".join(pieces)
        return self._response(request, run, text)

    def stream(
        self,
        request: ChatRequest,
        ctx: CallContext,
        cancel: threading.Event | None = None,
        waited: float = 0.0,
    ) -> Generator[StreamEvent, None, None]:
        """One generation as text deltas, then a final event with usage; the model stays locked
        until the stream ends or is closed."""
        with self._generation(request, ctx, cancel, waited) as (pieces, run):
            for piece in pieces:
                yield StreamEvent(type="delta", delta=piece)
        response = self._response(request, run, "")
        yield StreamEvent(
            type="final",
            finish_reason=response.finish_reason,
            raw_finish_reason=response.raw_finish_reason,
            usage=response.usage,
            latency=response.latency,
            id=response.id,
            model=response.model,
        )

    # ------------------------------------------------------------------ async

    def _executor(self, model: str) -> ThreadPoolExecutor:
        with self._executors_lock:  # not the load lock: a load must not block the event loop
            executor = self._executors.get(model)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"llmos-{self.name}")
                self._executors[model] = executor
            return executor

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """:meth:`chat` on the model's worker thread; the event loop stays free."""
        loop, cancel, submitted = asyncio.get_running_loop(), threading.Event(), time.perf_counter()

        def work() -> ChatResponse:
            return self.chat(request, ctx, cancel, time.perf_counter() - submitted)

        try:
            return await loop.run_in_executor(self._executor(request.model), work)
        except asyncio.CancelledError:
            cancel.set()  # a running generation stops at its next token
            raise

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """:meth:`stream` on the model's worker thread, its events handed to the loop in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        submitted = time.perf_counter()
        done = object()

        def pump() -> None:
            def put(item: Any) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, item)

            events = self.stream(request, ctx, cancel, time.perf_counter() - submitted)
            try:
                for event in events:
                    if cancel.is_set():
                        return
                    put(event)
                put(done)
            except BaseException as exc:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                    put(exc)
            finally:
                events.close()  # releases the model lock at once if the consumer left early

        future = loop.run_in_executor(self._executor(request.model), pump)
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            if not future.done():
                future.cancel()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Free every loaded model (after its current generation) and stop the worker threads."""
        with self._load_lock, self._executors_lock:
            models = list(self._models.values())
            executors = list(self._executors.values())
            self._models.clear()
            self._by_name.clear()
            self._executors.clear()
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        for loaded in models:
            # Freeing a model mid-generation would crash, so wait for the current one.
            if loaded.lock.acquire(timeout=60):
                try:
                    loaded.llm.close()
                finally:
                    loaded.lock.release()
            else:
                log.warning("%s is still generating; leaving it to be freed later", loaded.path)

    async def aclose(self) -> None:
        """:meth:`close` off the event loop (it may wait for a generation to finish)."""
        await asyncio.to_thread(self.close)
