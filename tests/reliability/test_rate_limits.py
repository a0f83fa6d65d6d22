"""Client-side rate limits over HTTP: token buckets shared by threads and tasks, retries included.

The clock here never moves by itself (``FakeClock(advance=False)``): buckets never refill, so
the waits callers are told to take are exact whatever the interleaving. A bucket holding a
minute's allowance serves that many requests at once; each one after it waits one more
interval, which only holds when every thread and task draws from the same bucket.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import AsyncClient, Client, InvalidRequestError, RetryPolicy, Timeout
from llmos.ratelimit import ClientRateLimitError

from .conftest import AI21, OPENAI, TIMEOUT, FakeClock, provider_settings


def limited(server: LoopbackServer, **limits: float) -> dict[str, dict[str, object]]:
    providers: dict[str, dict[str, object]] = dict(provider_settings(server.url))
    providers["ai21"] = {**providers["ai21"], **limits}
    return providers


def test_threads_share_one_requests_per_minute_bucket(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, requests_per_minute=60),
        retry=RetryPolicy.none(),
        timeout=TIMEOUT,
    ) as client:

        def worker() -> None:
            for _ in range(10):
                assert client.chat(AI21.target, tag).text == ANSWER

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    # 60 requests fit the minute; the other 20 wait 1 s, 2 s, ... 20 s (one per second).
    assert sorted(clock.slept) == pytest.approx([float(n) for n in range(1, 21)])
    assert fault_app.count(tag) == 80


def test_async_tasks_share_the_bucket_too(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)

    async def batch() -> list[str]:
        async with AsyncClient(
            env={},
            clock=clock,
            providers=limited(fault_server, requests_per_minute=30),
            retry=RetryPolicy.none(),
            timeout=TIMEOUT,
        ) as client:
            answers = await asyncio.gather(*(client.chat(AI21.target, tag) for _ in range(40)))
            return [a.text for a in answers]

    assert asyncio.run(batch()) == [ANSWER] * 40
    # 30 per minute: one every 2 s once the first 30 have gone.
    assert sorted(clock.slept) == pytest.approx([2.0 * n for n in range(1, 11)])
    assert fault_app.count(tag) == 40


def test_every_retry_takes_from_the_bucket(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)
    fault_app.script(tag, "503", "503")
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, requests_per_minute=3),
        retry=RetryPolicy(max_attempts=3, jitter=0),
        timeout=TIMEOUT,
    ) as client:
        assert client.chat(AI21.target, tag).text == ANSWER  # three requests: the minute's all
        assert client.chat(AI21.target, tag).text == ANSWER  # so this one waits 20 s
    assert clock.slept == pytest.approx([0.5, 1.0, 20.0])
    assert fault_app.count(tag) == 4


def test_streams_take_from_the_bucket_like_plain_calls(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, requests_per_minute=2),
        retry=RetryPolicy.none(),
        timeout=TIMEOUT,
    ) as client:
        assert client.stream(AI21.target, tag).text() == ANSWER
        assert client.chat(AI21.target, tag).text == ANSWER
        assert client.stream(AI21.target, tag).text() == ANSWER
    assert clock.slept == pytest.approx([30.0])


def test_tokens_per_minute_holds_back_calls_and_refuses_one_that_never_fits(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, tokens_per_minute=1000),
        retry=RetryPolicy.none(),
        timeout=TIMEOUT,
    ) as client:
        for _ in range(3):  # each reserves its prompt estimate plus max_tokens (~300)
            client.chat(AI21.target, tag, max_tokens=300)
        assert clock.slept == []
        client.chat(AI21.target, tag, max_tokens=300)
        assert len(clock.slept) == 1 and clock.slept[0] > 0
        with pytest.raises(InvalidRequestError) as info:
            client.chat(AI21.target, tag, max_tokens=2000)
        assert info.value.field == "max_tokens" and "tokens_per_minute" in str(info.value)
    assert fault_app.count(tag) == 4  # the refused call sent nothing


def test_a_wait_past_the_deadline_is_refused_at_once_and_falls_back(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock()
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, requests_per_minute=1),
        retry=RetryPolicy(max_attempts=3, jitter=0),
        timeout=Timeout(read=5, total=10),
    ) as client:
        assert client.chat(AI21.target, tag).target == AI21.target
        with pytest.raises(ClientRateLimitError) as info:  # next slot: in 60 s; deadline: 10 s
            client.chat(AI21.target, tag)
        assert info.value.retry_after == pytest.approx(60.0)
        assert info.value.provider == "ai21" and "requests_per_minute=1" in str(info.value)
        assert [(a.skipped, a.error_type) for a in info.value.attempts] == [
            (True, "ClientRateLimitError")
        ]
        assert clock.slept == []  # refused, not slept through
        response = client.chat(AI21.target, tag, fallbacks=[OPENAI.target])
        assert response.target == OPENAI.target
        # The client's own limit says nothing about the provider's health.
        assert client.health().get(AI21.target, {}).get("consecutive_failures", 0) == 0
        clock.now += 60  # the refused calls gave their share back: one minute frees one slot
        assert client.chat(AI21.target, tag).target == AI21.target
        assert clock.slept == []
    assert fault_app.count(tag, AI21.path) == 2


def test_limits_are_per_provider(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock(advance=False)
    with Client(
        env={},
        clock=clock,
        providers=limited(fault_server, requests_per_minute=1),
        retry=RetryPolicy.none(),
        timeout=TIMEOUT,
    ) as client:
        client.chat(AI21.target, tag)
        for _ in range(5):  # openai has no limit configured
            client.chat(OPENAI.target, tag)
        assert clock.slept == []
        client.chat(AI21.target, tag)
        assert clock.slept == pytest.approx([60.0])
