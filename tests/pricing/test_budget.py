"""Budgets and spend through the real client pipeline, on a metered test provider.

MeteredProvider is a real Provider subclass (registered like a plugin) that answers with usage;
the budget, reservation and ledger code under test runs unchanged.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

import llmos.pricing
from llmos import AsyncClient, BudgetExceededError, Client, Provider
from llmos.pricing import SpendLedger
from llmos.providers.base import CallContext
from llmos.routing import Target
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    Cost,
    StreamEvent,
    TokenCount,
    Usage,
)

M = Decimal(10) ** 6
PROMPT_TOKENS = 100
MAX_TOKENS = 50
# metered:m costs $10 per 1M input and $20 per 1M output tokens (registered below), so one
# call's worst case is (100 * 10 + 50 * 20) / 1e6 = $0.002.
WORST = Decimal("0.002")


class MeteredProvider(Provider):
    kind = "metered"
    needs_key = False

    def __init__(self, name: str, settings: object) -> None:
        super().__init__(name, settings)  # type: ignore[arg-type]
        self.calls = 0
        self.in_flight = 0
        self.lock = threading.Lock()
        self.rng = random.Random(7)

    def count_prompt_tokens(self, request: ChatRequest) -> TokenCount:
        return TokenCount(tokens=PROMPT_TOKENS, method="exact", tokenizer="metered")

    def _answer(self, request: ChatRequest) -> ChatResponse:
        with self.lock:
            self.calls += 1
            completion = self.rng.randint(1, request.max_tokens or 1)
        return ChatResponse(
            provider=self.name,
            model=request.model,
            target=f"{self.name}:{request.model}",
            message=AssistantMessage(content="ok"),
            finish_reason="stop",
            usage=Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=completion),
        )

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        with self.lock:
            self.in_flight += 1
        try:
            time.sleep(0.002)  # keeps many calls in flight at once
            return self._answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        await asyncio.sleep(0.001)
        return self._answer(request)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        self.calls += 1
        yield StreamEvent(type="delta", delta="o")
        yield StreamEvent(type="delta", delta="k")
        yield StreamEvent(
            type="final",
            finish_reason="stop",
            usage=Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=20),
        )


class FreeProvider(MeteredProvider):
    kind = "local"  # a configured name of kind local: no API fee


@pytest.fixture(autouse=True)
def metered_price() -> Iterator[None]:
    llmos.pricing.register("metered:m", input=10, output=20)
    yield
    llmos.pricing.unregister("metered:m")


def metered_client(cls: type = Client, **kwargs: object) -> Client:
    client = cls(env={}, **kwargs)
    client._core.registry.register("metered", MeteredProvider)
    client._core.registry.register("freebie", FreeProvider)
    client._core.registry.register("unpriced", MeteredProvider)
    return client


def test_fifty_threads_never_spend_more_than_the_budget() -> None:
    limit = Decimal("0.05")  # 25 worst cases
    client = metered_client(budget_usd=limit)
    provider = client.provider("metered")
    assert isinstance(provider, MeteredProvider)
    costs: list[Decimal] = []
    refused: list[BudgetExceededError] = []
    record = threading.Lock()
    start = threading.Barrier(50)

    def work() -> None:
        start.wait()
        for _ in range(4):
            try:
                r = client.chat("metered:m", "hi", max_tokens=MAX_TOKENS)
            except BudgetExceededError as error:
                with record:
                    refused.append(error)
            else:
                assert r.cost is not None and r.cost.total_usd is not None
                with record:
                    costs.append(r.cost.total_usd)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    budget = client._core.budget
    assert budget is not None
    spent = budget.spent()
    assert spent <= limit  # actual costs never exceed the reserved worst cases here
    assert spent == sum(costs, Decimal(0))  # every actual cost booked exactly once
    assert budget.reserved() == 0  # no reservation leaked
    assert costs and refused and len(costs) + len(refused) == 200
    assert provider.calls == len(costs)  # a refused call sends nothing
    assert all(e.worst_case_usd == WORST for e in refused if e.worst_case_usd is not None)
    report = client.spend()
    assert report["total_usd"] == spent
    assert report["by_provider"] == {"metered": spent}
    assert report["by_model"] == {"metered:m": spent}
    assert report["calls"] == {"metered:m": len(costs)}


async def test_fifty_asyncio_tasks_share_the_budget_safely() -> None:
    limit = Decimal("0.02")
    client = metered_client(AsyncClient, budget_usd=limit)

    async def one() -> Decimal | None:
        try:
            r = await client.chat("metered:m", "hi", max_tokens=MAX_TOKENS)
        except BudgetExceededError:
            return None
        assert r.cost is not None
        return r.cost.total_usd

    results = await asyncio.gather(*(one() for _ in range(50)))
    budget = client._core.budget
    assert budget is not None
    paid = [r for r in results if r is not None]
    assert paid and None in results
    assert budget.spent() == sum(paid, Decimal(0)) <= limit
    assert budget.reserved() == 0


def test_max_cost_usd_refuses_a_call_whose_worst_case_is_higher_and_sends_nothing() -> None:
    client = metered_client()
    provider = client.provider("metered")
    assert isinstance(provider, MeteredProvider)
    with pytest.raises(BudgetExceededError) as info:
        client.chat("metered:m", "hi", max_tokens=MAX_TOKENS, max_cost_usd="0.0019")
    assert info.value.worst_case_usd == WORST and provider.calls == 0
    ok = client.chat("metered:m", "hi", max_tokens=MAX_TOKENS, max_cost_usd="0.002")
    assert ok.cost is not None and ok.cost.total_usd is not None and provider.calls == 1


def test_a_budget_refuses_targets_whose_price_is_unknown() -> None:
    client = metered_client(budget_usd=1)
    with pytest.raises(BudgetExceededError, match="price is unknown"):
        client.chat("unpriced:m", "hi", max_tokens=5)
    assert client.provider("unpriced").calls == 0  # type: ignore[attr-defined]


def test_an_over_budget_target_falls_back_to_a_free_one() -> None:
    client = metered_client(budget_usd="0.001")
    r = client.chat("metered:m", "hi", max_tokens=MAX_TOKENS, fallbacks=["freebie:m"])
    assert r.target == "freebie:m" and r.cost is not None and r.cost.total_usd == 0
    assert client.provider("metered").calls == 0  # type: ignore[attr-defined]


def test_the_final_stream_event_carries_the_actual_cost() -> None:
    client = metered_client(budget_usd=1)
    events = list(client.stream("metered:m", "hi", max_tokens=MAX_TOKENS))
    final = events[-1]
    assert final.is_final and final.cost is not None
    assert final.cost.total_usd == (PROMPT_TOKENS * 10 + 20 * 20) / M  # $0.0014
    assert client._core.budget is not None and client._core.budget.spent() == final.cost.total_usd


def test_each_call_carries_its_cost_and_spend_adds_up() -> None:
    client = metered_client()
    a = client.chat("metered:m", "hi", max_tokens=MAX_TOKENS)
    b = client.chat("freebie:m", "hi", max_tokens=MAX_TOKENS)
    assert a.cost is not None and a.cost.price_key == "metered:m"
    assert b.cost is not None and b.cost.total_usd == 0 and b.cost.price_key == "local:*"
    report = client.spend()
    assert report["total_usd"] == a.cost.total_usd
    assert report["by_provider"] == {"metered": a.cost.total_usd, "freebie": Decimal(0)}


def test_the_ledger_keeps_unknown_costs_apart_and_merges_provider_aliases() -> None:
    ledger = SpendLedger()
    ledger.record(Target("hf", "org/m:nebius"), Cost(total_usd=Decimal("0.5")))
    ledger.record(Target("huggingface", "org/m:nebius"), Cost(total_usd=Decimal("0.25")))
    ledger.record(Target("acme", "x"), Cost(total_usd=None, reason="unknown"))
    ledger.record(Target("local", "g"), Cost(total_usd=Decimal("0.1"), compute_usd=Decimal("0.1")))
    report = ledger.report()
    assert report["by_provider"] == {"huggingface": Decimal("0.75"), "local": Decimal("0.1")}
    assert report["by_model"]["huggingface:org/m:nebius"] == Decimal("0.75")
    assert report["unpriced_calls"] == {"acme:x": 1}
    assert report["compute_usd"] == Decimal("0.1")
    assert report["total_usd"] == Decimal("0.85")
