"""The soak test: 2,000 calls at concurrency 50 with 20% of them given injected faults.

Bounded in count and in time. Every call must end answered or in a typed llmos error, none may
hang, and the server must never see more requests for one call than ``max_attempts``. The
figures (requests, faults, outcomes, wall time, peak open sockets) are printed (``pytest -s``)
and written to ``soak.json`` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import AsyncClient, CircuitBreaker, RetryPolicy, Timeout
from llmos.errors import LLMOSError

from .conftest import AI21, OPENAI, FakeClock, client_sockets, new_threads, provider_settings

CALLS = 2000
CONCURRENCY = 50
FAULTY_SHARE = 0.2
SEED = 20261201
MAX_ATTEMPTS = 3

#: Faults drawn for plain calls, and the extra ones only a stream can suffer.
PLAIN_FAULTS = [
    "429s",
    "429ms",
    "429date",
    "429cap",
    "500",
    "502",
    "503",
    "503ra",
    "504",
    "408",
    "409",
    "401",
    "400",
    "quota",
    "context",
    "noretry",
    "forceretry",
    "reset",
    "stall",
    "malformed",
    "html",
]
STREAM_FAULTS = [*PLAIN_FAULTS, "stallstream", "truncated"]
#: Faults whose outcome does not depend on timing: never retried, so the class is certain.
FINAL = {
    "401": "AuthenticationError",
    "400": "InvalidRequestError",
    "quota": "QuotaExceededError",
    "context": "ContextLengthError",
    "noretry": "ServerError",
    "429cap": "RateLimitError",
}


@dataclass
class Plan:
    """One call of the soak: where it goes, how, and the faults scripted for it."""

    tag: str
    target: str
    stream: bool
    faults: list[str]


def plans(app: FaultApp) -> list[Plan]:
    rng = random.Random(SEED)
    out = []
    for i in range(CALLS):
        stream = i % 5 == 0
        faults: list[str] = []
        if rng.random() < FAULTY_SHARE:
            fault = rng.choice(STREAM_FAULTS if stream else PLAIN_FAULTS)
            faults = [fault] * rng.randint(1, MAX_ATTEMPTS)  # transient or persistent
        plan = Plan(f"soak-{i}", (OPENAI if i % 2 else AI21).target, stream, faults)
        if faults:
            app.script(plan.tag, *faults)
        out.append(plan)
    return out


class SocketSampler(threading.Thread):
    """Samples the open connections to the server until stopped; keeps the peak."""

    def __init__(self, port: int) -> None:
        super().__init__(name="socket-sampler", daemon=True)
        self.port = port
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, client_sockets(self.port))
            self.samples += 1
            self._halt.wait(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


async def soak(server: LoopbackServer, todo: list[Plan]) -> dict[str, str]:
    """Run every plan at CONCURRENCY; the outcome of each: "answered" or its error class."""
    outcomes: dict[str, str] = {}
    queue: asyncio.Queue[Plan] = asyncio.Queue()
    for plan in todo:
        queue.put_nowait(plan)
    clock = FakeClock()  # backoff and Retry-After waits are recorded, not slept
    async with AsyncClient(
        env={},
        clock=clock,
        providers=provider_settings(server.url),
        retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_delay=0.5, jitter=0.25),
        timeout=Timeout(connect=5.0, read=1.5),
        # The breaker is left out on purpose: the soak measures retries, timeouts and cleanup.
        circuit_breaker=CircuitBreaker(failure_threshold=10**9, clock=clock),
    ) as client:

        async def one(plan: Plan) -> str:
            if plan.stream:
                text = await client.stream(plan.target, plan.tag, max_tokens=64).text()
            else:
                text = (await client.chat(plan.target, plan.tag, max_tokens=64)).text
            assert text == ANSWER, f"{plan.tag} answered {text!r}"
            return "answered"

        async def worker() -> None:
            while not queue.empty():
                plan = queue.get_nowait()
                try:
                    outcomes[plan.tag] = await asyncio.wait_for(one(plan), timeout=30)
                except LLMOSError as exc:
                    outcomes[plan.tag] = type(exc).__name__
                except asyncio.TimeoutError:
                    outcomes[plan.tag] = "HUNG"
                except Exception as exc:  # anything else is a defect, named in the report
                    outcomes[plan.tag] = f"UNTYPED:{type(exc).__name__}"

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), timeout=150)
    return outcomes


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_soak_2000_calls_at_concurrency_50_with_20_percent_faults(tmp_path: Path) -> None:
    app = FaultApp(max_stall=5.0)
    with LoopbackServer(app) as server:
        todo = plans(app)
        threads = set(threading.enumerate())
        sampler = SocketSampler(server.port)
        sampler.start()
        started = time.perf_counter()
        try:
            outcomes = asyncio.run(soak(server, todo))
        finally:
            wall = time.perf_counter() - started
            sampler.stop()
        left_open = client_sockets(server.port)
        left_threads = new_threads(threads | {sampler})
        per_call = app.counts()

    by_class = Counter(outcomes.values())
    injected = app.injected()
    report = {
        "calls": CALLS,
        "concurrency": CONCURRENCY,
        "faulty_calls": sum(1 for p in todo if p.faults),
        "streams": sum(1 for p in todo if p.stream),
        "requests_sent": sum(per_call.values()),
        "faults_injected": sum(injected.values()),
        "faults_by_kind": dict(sorted(injected.items())),
        "outcomes": dict(by_class.most_common()),
        "max_requests_per_call": max(per_call.values()),
        "wall_time_s": round(wall, 2),
        "peak_open_sockets": sampler.peak,
        "socket_samples": sampler.samples,
        "sockets_left_open": left_open,
        "threads_left": [t.name for t in left_threads],
    }
    (tmp_path / "soak.json").write_text(json.dumps(report, indent=2))
    print("\nsoak:", json.dumps(report, indent=2))

    assert len(outcomes) == CALLS
    assert not [t for t, o in outcomes.items() if o == "HUNG"], "calls hung"
    assert not [t for t, o in outcomes.items() if o.startswith("UNTYPED")], report["outcomes"]
    assert max(per_call.values()) <= MAX_ATTEMPTS
    assert set(per_call) == {p.tag for p in todo}
    for plan in todo:
        outcome = outcomes[plan.tag]
        if not plan.faults:
            assert outcome == "answered", f"{plan.tag} had no fault but ended in {outcome}"
            assert per_call[plan.tag] == 1
        elif plan.faults[0] in FINAL:
            assert outcome == FINAL[plan.faults[0]], (plan, outcome)
            assert per_call[plan.tag] == 1
    assert left_open == 0 and left_threads == []
    assert sampler.samples > 0 and 0 < sampler.peak <= 2 * CONCURRENCY
