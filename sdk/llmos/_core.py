"""The shared core under Client and AsyncClient: configuration, providers, and the call pipeline.

One call goes: validate (messages.py) -> chain of targets (routing.py) -> per target: capability
check, budget reservation, rate limit, retries (retry.py) around one provider attempt -> the
response completed with latency, cost, attempts and parsed output. Client and AsyncClient only
differ in how they wait; everything they share lives here.
"""

from __future__ import annotations

import difflib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

from pydantic import BaseModel, ValidationError

from llmos.errors import (
    BudgetExceededError,
    ConfigurationError,
    InvalidRequestError,
    LLMOSError,
)
from llmos.messages import MessagesInput, ResponseFormatInput, build_request
from llmos.pricing import Budget, Pricing, Reservation, SpendLedger
from llmos.providers.base import CallContext, Provider, ProviderSettings
from llmos.providers.registry import ProviderRegistry
from llmos.ratelimit import ClientRateLimitError, RateLimiter
from llmos.retry import AttemptHook, Clock, RetryPolicy
from llmos.routing import CircuitBreaker, Router, Target, dedupe_chain, parse_target
from llmos.timeouts import Deadline, DeadlineExceededError, Timeout, TimeoutInput, to_timeout
from llmos.types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Cost,
    CostEstimate,
    Document,
    EmbeddingResponse,
    Tool,
)

__all__ = ["DEFAULT_MODEL", "Call", "ChatOptions", "Core"]

#: The model used when none is given and LLMOS_MODEL is unset: the embedded local model.
DEFAULT_MODEL = "local:gemma-3-270m"


class ChatOptions(TypedDict, total=False):
    """Keyword arguments of ``chat`` and ``stream``: request parameters and per-call policy."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: str | Sequence[str]
    seed: int
    tools: Sequence[Tool | Mapping[str, Any]]
    tool_choice: str | Mapping[str, Any]
    response_format: ResponseFormatInput
    logprobs: bool
    top_logprobs: int
    documents: Sequence[Document | Mapping[str, Any] | str]
    extra_body: Mapping[str, Any]
    fallbacks: Sequence[str]
    retry: RetryPolicy
    timeout: TimeoutInput
    max_cost_usd: float | Decimal | str


_REQUEST_OPTIONS = frozenset(
    {
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "top_logprobs",
        "documents",
        "extra_body",
    }
)
_POLICY_OPTIONS = frozenset({"fallbacks", "retry", "timeout", "max_cost_usd"})
_ALL_OPTIONS = _REQUEST_OPTIONS | _POLICY_OPTIONS
_ALIASES = {"hf": "huggingface"}


def _money(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidRequestError(f"{name} must be a number of US dollars", field=name) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidRequestError(f"{name} must be zero or more US dollars", field=name)
    return amount


@dataclass
class Call:
    """One validated call: the request, its chain of targets and the policy it runs under."""

    request: ChatRequest | None
    chain: list[Target]
    retry: RetryPolicy
    timeout: Timeout
    deadline: Deadline
    max_cost: Decimal | None
    timeout_given: bool = False
    started: float = field(default_factory=time.perf_counter)
    attempts: list[Attempt] = field(default_factory=list)


class Core:
    """Everything Client and AsyncClient share. Thread-safe."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Mapping[str, Any] | ProviderSettings] | None,
        model: str | None,
        fallbacks: Sequence[str] | None,
        retry: RetryPolicy | None,
        timeout: TimeoutInput,
        budget_usd: float | Decimal | str | None,
        circuit_breaker: CircuitBreaker | None,
        clock: Clock | None,
        compute_usd_per_hour: float | None,
        env: Mapping[str, str] | None,
    ) -> None:
        env = dict(os.environ) if env is None else dict(env)
        self.registry = ProviderRegistry(providers, env=env)
        default = model or env.get("LLMOS_MODEL") or DEFAULT_MODEL
        self.default_target = parse_target(default, field="model")
        self.fallbacks = [
            parse_target(f, field=f"fallbacks[{i}]") for i, f in enumerate(fallbacks or [])
        ]
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be an llmos.RetryPolicy")
        self.retry = retry or RetryPolicy()
        self.timeout = to_timeout(timeout, Timeout())
        self.clock = clock or Clock()
        self.breaker = circuit_breaker or CircuitBreaker(clock=self.clock)
        self.router = Router(self.breaker)
        self.pricing = Pricing(compute_usd_per_hour=compute_usd_per_hour, registry=self.registry)
        limit = _money(budget_usd, "budget_usd")
        self.budget = Budget(limit) if limit is not None else None
        self.ledger = SpendLedger()
        self._providers: dict[str, Provider] = {}
        self._limiters: dict[str, RateLimiter | None] = {}
        self._lock = threading.Lock()
        self.closed = False

    # ------------------------------------------------------------------ providers

    def provider(self, name: str) -> Provider:
        """The provider instance for ``name``, created on first use and kept until close."""
        name = self.registry.canonical(name)
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        with self._lock:
            if self.closed:
                raise ConfigurationError("this client is closed; create a new one")
            provider = self._providers.get(name)
            if provider is None:
                provider = self.registry.create(name)
                self._providers[name] = provider
            return provider

    def open_providers(self) -> list[Provider]:
        """Providers created so far, for closing."""
        with self._lock:
            self.closed = True
            providers = list(self._providers.values())
            self._providers.clear()
            return providers

    def limiter(self, provider: Provider) -> RateLimiter | None:
        """The rate limiter of a provider, when its settings ask for one."""
        if provider.name not in self._limiters:
            s = provider.settings
            limiter = None
            if s.requests_per_minute or s.tokens_per_minute:
                limiter = RateLimiter(
                    s.requests_per_minute, s.tokens_per_minute, self.clock, name=provider.name
                )
            with self._lock:
                self._limiters.setdefault(provider.name, limiter)
        return self._limiters[provider.name]

    # ------------------------------------------------------------------ preparing a call

    def prepare(
        self, model: str | None, messages: MessagesInput, options: Mapping[str, Any]
    ) -> Call:
        """Validate a call once: parameters, messages, targets and policy."""
        unknown = [] if options.keys() <= _ALL_OPTIONS else sorted(set(options) - _ALL_OPTIONS)
        if unknown:
            close = difflib.get_close_matches(unknown[0], _ALL_OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidRequestError(f"unknown parameter {unknown[0]!r}{hint}", field=unknown[0])
        primary = self.default_target if model is None else parse_target(model)
        params = {k: v for k, v in options.items() if k in _REQUEST_OPTIONS}
        request = build_request(primary.model, messages, **params)
        fallbacks = self.fallbacks
        if options.get("fallbacks") is not None:
            raw = options["fallbacks"]
            if isinstance(raw, str) or not isinstance(raw, Sequence):
                raise InvalidRequestError(
                    "fallbacks must be a list of 'provider:model' strings", field="fallbacks"
                )
            fallbacks = [parse_target(f, field=f"fallbacks[{i}]") for i, f in enumerate(raw)]
        retry = options.get("retry") or self.retry
        if not isinstance(retry, RetryPolicy):
            raise InvalidRequestError("retry must be an llmos.RetryPolicy", field="retry")
        try:
            timeout = to_timeout(options.get("timeout"), self.timeout)
        except ConfigurationError as exc:
            raise InvalidRequestError(exc.message, field="timeout") from None
        totals = [t for t in (timeout.total, retry.deadline) if t is not None]
        chain = [primary] if not fallbacks else dedupe_chain(primary, fallbacks, aliases=_ALIASES)
        return Call(
            request=request,
            chain=chain,
            retry=retry,
            timeout=timeout,
            deadline=Deadline(min(totals) if totals else None, self.clock.monotonic),
            max_cost=_money(options.get("max_cost_usd"), "max_cost_usd"),
            timeout_given=options.get("timeout") is not None,
        )

    def prepare_embedding(
        self, target: Target, retry: RetryPolicy | None, timeout: TimeoutInput
    ) -> Call:
        """The policy an embedding call runs under (embeddings have no fallbacks)."""
        policy = retry or self.retry
        limits = to_timeout(timeout, self.timeout)
        totals = [t for t in (limits.total, policy.deadline) if t is not None]
        return Call(
            request=None,
            chain=[target],
            retry=policy,
            timeout=limits,
            deadline=Deadline(min(totals) if totals else None, self.clock.monotonic),
            max_cost=None,
        )

    def target_request(
        self, call: Call, target: Target, *, stream: bool
    ) -> tuple[Provider, ChatRequest]:
        """The provider and request for one target, refused early when it cannot serve it."""
        provider = self.provider(target.provider)
        request = call.request
        assert request is not None, "chat calls always carry a request"
        if request.model != target.model:
            request = request.model_copy(update={"model": target.model})
        provider.check(request, stream=stream)
        return provider, request

    def check_deadline(self, call: Call, provider: str, model: str) -> None:
        """Stop a stream whose call has outlived its deadline."""
        if call.deadline.expired():
            raise DeadlineExceededError(
                f"the call's deadline of {_total(call)} s passed while streaming; raise "
                "timeout.total or RetryPolicy.deadline to allow longer answers",
                provider=provider,
                model=model,
            )

    def context(
        self, call: Call, provider: Provider | None = None, model: str | None = None
    ) -> CallContext:
        """The timeouts one attempt runs under; raises once the call's deadline has passed.

        Connect and read timeouts come from the call, else the provider's settings, else the
        client; the total (the deadline) from the call or the client.
        """
        if call.deadline.expired():
            name = provider.name if provider is not None else None
            raise DeadlineExceededError(
                f"the call's deadline of {_total(call)} s passed before this attempt; nothing "
                "was sent. Raise timeout.total or RetryPolicy.deadline to allow longer calls",
                provider=name,
                model=model,
            )
        timeout = call.timeout
        if not call.timeout_given and provider is not None and provider.settings.timeout:
            timeout = provider.settings.timeout
        return CallContext(timeout=timeout, deadline=call.deadline)

    def throttle(self, call: Call, provider: Provider, tokens: int) -> float:
        """Wait for the provider's client-side rate limit, if it has one; once per attempt.

        A wait that would outlive the call's deadline is refused at once (ClientRateLimitError),
        so the call can fall back instead of sleeping past its deadline.
        """
        limiter = self.limiter(provider)
        if limiter is None:
            return 0.0
        return limiter.acquire(tokens, max_wait=call.deadline.remaining())

    async def athrottle(self, call: Call, provider: Provider, tokens: int) -> float:
        """Async twin of :meth:`throttle`."""
        limiter = self.limiter(provider)
        if limiter is None:
            return 0.0
        return await limiter.aacquire(tokens, max_wait=call.deadline.remaining())

    # ------------------------------------------------------------------ money

    def reserve(
        self, call: Call, target: Target, provider: Provider, request: ChatRequest
    ) -> Reservation | None:
        """Refuse a call whose worst case exceeds its limits; else set the worst case aside."""
        if self.budget is None and call.max_cost is None:
            return None
        estimate = self.pricing.estimate(target, request, provider)
        worst = estimate.worst_case_usd
        if call.max_cost is not None and (worst is None or worst > call.max_cost):
            shown = "unknown" if worst is None else f"${worst}"
            raise BudgetExceededError(
                f"{target} could cost up to {shown}, over max_cost_usd=${call.max_cost}; "
                "lower max_tokens or raise max_cost_usd",
                worst_case_usd=worst,
                remaining_usd=call.max_cost,
                provider=target.provider,
                model=target.model,
            )
        if self.budget is None:
            return None
        return self.budget.reserve(str(target), worst)

    def settle(self, reservation: Reservation | None, cost: Cost | None) -> None:
        """Book what a call cost against the budget."""
        if reservation is not None and self.budget is not None:
            self.budget.settle(reservation, cost)

    def release(self, reservation: Reservation | None) -> None:
        """Return a reservation for a call that sent nothing billable."""
        if reservation is not None and self.budget is not None:
            self.budget.release(reservation)

    def estimate(
        self, model: str | None, messages: MessagesInput, max_tokens: int | None
    ) -> CostEstimate:
        """What a call would cost, before sending it."""
        target = self.default_target if model is None else parse_target(model)
        request = build_request(target.model, messages, max_tokens=max_tokens)
        provider = self.provider(target.provider)
        return self.pricing.estimate(target, request, provider)

    def rate_tokens(self, request: ChatRequest) -> int:
        """A cheap upper-bound guess of a call's tokens, for tokens-per-minute limits."""
        chars = sum(len(getattr(m, "content", None) or "") for m in request.messages)
        return chars // 3 + (request.max_tokens or 256)

    def embedding_tokens(self, inputs: Sequence[str]) -> int:
        """The same guess for an embedding call's inputs."""
        return sum(len(item) for item in inputs) // 3 + 1

    # ------------------------------------------------------------------ attempts and results

    def attempt_hook(self, attempts: list[Attempt], target: Target) -> AttemptHook:
        """A retry hook that records each attempt on ``attempts``."""

        def record(
            number: int, waited: float, error: BaseException | None, duration: float
        ) -> None:
            attempts.append(
                Attempt(
                    target=str(target),
                    number=number,
                    ok=error is None,
                    error_type=None if error is None else type(error).__name__,
                    status_code=getattr(error, "status_code", None),
                    message=None if error is None else str(getattr(error, "message", error)),
                    waited_s=waited,
                    duration_s=duration,
                    # Refused before sending (deadline passed, rate limit too far off).
                    skipped=isinstance(error, (DeadlineExceededError, ClientRateLimitError)),
                )
            )

        return record

    def finish(
        self,
        call: Call,
        target: Target,
        response: ChatResponse,
        reservation: Reservation | None,
        *,
        total_s: float | None = None,
        ttft_s: float | None = None,
    ) -> ChatResponse:
        """Complete a provider's response: latency, cost, attempts, parsed output, budget.

        The response is the provider's fresh object for this call alone, so it is completed in
        place rather than copied (a copy per call is measurable on the hot path).
        """
        latency = response.latency
        latency.total_s = total_s if total_s is not None else time.perf_counter() - call.started
        if ttft_s is not None:
            latency.ttft_s = ttft_s
        cost = self.pricing.cost(target, response.usage, latency)
        self.settle(reservation, cost)
        self.ledger.record(target, cost)
        response.cost = cost
        response.attempts = list(call.attempts)
        response.target = str(target)
        fmt = call.request.response_format if call.request is not None else None
        if fmt is not None and fmt.output_type is not None:
            response.parsed, response.parse_error = _parse_output(fmt.output_type, response.text)
        return response

    def finish_embedding(
        self, call: Call, target: Target, response: EmbeddingResponse, total_s: float
    ) -> EmbeddingResponse:
        """Complete an embedding response: latency, cost and attempts."""
        latency = response.latency.model_copy(update={"total_s": total_s})
        cost = self.pricing.cost(target, response.usage, latency)
        self.ledger.record(target, cost)
        return response.model_copy(
            update={
                "latency": latency,
                "cost": cost,
                "attempts": list(call.attempts),
                "target": str(target),
            }
        )

    def health(self) -> dict[str, dict[str, object]]:
        """Circuit-breaker state of every target this client has called."""
        return self.breaker.snapshot()


def _parse_output(model: type[BaseModel], text: str) -> tuple[BaseModel | None, str | None]:
    try:
        return model.model_validate_json(text), None
    except ValidationError as exc:
        return None, f"output does not match {model.__name__}: {exc}"


def _total(call: Call) -> str:
    totals = [t for t in (call.timeout.total, call.retry.deadline) if t is not None]
    return f"{min(totals):g}" if totals else "?"


def failure_note(error: LLMOSError) -> str:
    """A one-line description of an error for logs and reports."""
    return f"{type(error).__name__}: {error}"
