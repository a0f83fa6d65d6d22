"""Property-based tests: whatever a caller passes, llmos builds a valid request or raises
InvalidRequestError, never another exception; and the header parsers never crash.

Three levels: ``build_request`` alone; ``Client.chat``'s whole validation (request parameters
and per-call policy) in front of a provider that stops the call the moment it is reached; and
both real HTTP providers (their capability checks and wire encoders) in front of a closed port,
where reaching the network shows up as APIConnectionError.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmos import (
    AllProvidersFailedError,
    APIConnectionError,
    APITimeoutError,
    BudgetExceededError,
    Capabilities,
    CircuitBreaker,
    Client,
    InvalidRequestError,
    Provider,
)
from llmos.messages import build_request
from llmos.providers._errors import parse_retry_after
from llmos.providers.base import CallContext
from llmos.retry import RetryPolicy
from llmos.types import ChatRequest, ChatResponse

from .conftest import AI21_KEY, OPENAI_KEY, closed_port

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite must be reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 3)), inner, max_size=3)
    ),
    max_leaves=8,
)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot", "", "USER"])
content = st.one_of(
    st.text(max_size=20),
    st.none(),
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=10)}),
            st.fixed_dictionaries(
                {"type": st.sampled_from(["image_url", "audio", "text"]), "image_url": json_value}
            ),
            st.text(max_size=5),
            json_value,
        ),
        max_size=3,
    ),
    json_value,
)
tool_call = st.one_of(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.text(max_size=6), st.none(), st.integers()),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {
                    "name": st.one_of(st.text(max_size=8), st.none()),
                    "arguments": st.one_of(st.text(max_size=10), json_value),
                }
            ),
        },
    ),
    json_value,
)
message = st.one_of(
    st.fixed_dictionaries(
        {"role": roles, "content": content},
        optional={
            "name": st.one_of(st.text(max_size=8), json_value),
            "tool_calls": st.one_of(st.lists(tool_call, max_size=2), json_value),
            "tool_call_id": st.one_of(st.text(max_size=6), json_value),
            "refusal": json_value,
            "extra": json_value,
        },
    ),
    json_value,
)
# A well-formed message with stray extra keys, of any type (dict keys need not be strings).
cluttered = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=8)}),
    st.dictionaries(
        st.one_of(st.integers(0, 3), st.text(max_size=4), st.none()), json_value, max_size=2
    ),
)
messages = st.one_of(
    st.text(max_size=30), st.lists(st.one_of(message, cluttered), max_size=4), json_value
)

tool = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "code_interpreter"]),
            "function": st.fixed_dictionaries(
                {
                    "name": st.one_of(
                        st.sampled_from(["get_weather", "f", ""]), st.text(max_size=70)
                    ),
                },
                optional={
                    "description": st.text(max_size=10),
                    "parameters": st.one_of(
                        st.just({"type": "object", "properties": {}}), json_value
                    ),
                    "strict": json_value,
                },
            ),
        },
    ),
    json_value,
)
number = st.one_of(
    st.none(),
    st.integers(-5, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=4),
)
request_params = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": number,
        "temperature": number,
        "top_p": number,
        "stop": st.one_of(
            st.none(), st.text(max_size=5), st.lists(st.text(max_size=5), max_size=5), json_value
        ),
        "seed": number,
        "tools": st.one_of(st.none(), st.lists(tool, max_size=3), json_value),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required", "get_weather", "missing"]), json_value
        ),
        "response_format": st.one_of(
            st.sampled_from(["json", "json_object", "text", "xml"]),
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["json_schema", "json_object", "x"]),
                    "json_schema": json_value,
                }
            ),
            json_value,
        ),
        "logprobs": st.one_of(st.booleans(), json_value),
        "top_logprobs": number,
        "documents": st.one_of(
            st.none(), st.lists(st.one_of(st.text(max_size=8), json_value), max_size=3), json_value
        ),
        "extra_body": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=5), json_leaf, max_size=2), json_value
        ),
    },
)
policy_params = st.fixed_dictionaries(
    {},
    optional={
        "fallbacks": st.one_of(
            st.lists(st.sampled_from(["sentinel:b", "nocolon", ":x", "a:"]), max_size=2), json_value
        ),
        "retry": st.one_of(st.just(RetryPolicy.none()), json_value),
        "timeout": st.one_of(st.floats(allow_nan=True, allow_infinity=True), json_value),
        "max_cost_usd": st.one_of(number, st.text(max_size=6)),
        "temprature": json_value,  # a misspelt parameter
    },
)


def check_request(request: ChatRequest) -> None:
    """What every valid request must be: serialisable, with a model and at least one message."""
    assert isinstance(request, ChatRequest)
    assert request.model and request.messages
    request.model_dump_json()
    for value in (request.temperature, request.top_p):
        assert value is None or math.isfinite(value)


@PROPERTY
@given(messages=messages, params=request_params)
def test_build_request_gives_a_valid_request_or_invalid_request_error(
    messages: Any, params: dict[str, Any]
) -> None:
    try:
        request = build_request("gpt-4.1-mini", messages, **params)
    except InvalidRequestError as exc:
        assert exc.field, f"the error names no field: {exc}"
        return
    check_request(request)


class Reached(Exception):
    """Raised by the sentinel provider: the call passed validation and reached a provider."""

    def __init__(self, request: ChatRequest) -> None:
        super().__init__("reached the provider")
        self.request = request


class SentinelProvider(Provider):
    """Stops the call the moment it is reached, with the request it was given."""

    kind = "sentinel"
    needs_key = False
    caps: ClassVar[Capabilities] = Capabilities(
        tools=True,
        json_schema=True,
        json_object=True,
        logprobs=True,
        documents=True,
        needs_key=False,
    )

    def capabilities(self, model: str) -> Capabilities:
        return self.caps

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        raise Reached(request)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[Any]:
        raise Reached(request)


@pytest.fixture(scope="module")
def sentinel_client() -> Iterator[Client]:
    client = Client(env={})
    client._core.registry.register("sentinel", SentinelProvider)
    yield client
    client.close()


@PROPERTY
@given(messages=messages, params=request_params, policy=policy_params, stream=st.booleans())
def test_client_validation_gives_a_valid_request_or_invalid_request_error(
    sentinel_client: Client,
    messages: Any,
    params: dict[str, Any],
    policy: dict[str, Any],
    stream: bool,
) -> None:
    try:
        if stream:
            list(sentinel_client.stream("sentinel:a", messages, **params, **policy))
        else:
            sentinel_client.chat("sentinel:a", messages, **params, **policy)
    except InvalidRequestError as exc:
        assert exc.field, f"the error names no field: {exc}"
    except BudgetExceededError as exc:  # a valid max_cost_usd the target's price cannot meet
        assert policy.get("max_cost_usd") is not None, exc
    except APITimeoutError as exc:  # a valid but tiny timeout passed before anything was sent
        assert policy.get("timeout") is not None, exc
    except AllProvidersFailedError as exc:  # ...nor any fallback's
        assert policy.get("max_cost_usd") is not None, exc
        assert all(isinstance(e, BudgetExceededError) for e in exc.errors), exc
    except Reached as reached:
        check_request(reached.request)
    else:
        pytest.fail("the sentinel provider always raises once reached")


@pytest.fixture(scope="module")
def offline_client() -> Iterator[Client]:
    url = f"http://127.0.0.1:{closed_port()}"
    client = Client(
        env={},
        providers={
            "openai": {"base_url": url + "/v1", "api_key": OPENAI_KEY},
            "ai21": {"base_url": url + "/studio/v1", "api_key": AI21_KEY},
        },
        retry=RetryPolicy.none(),
        timeout=1.0,
        circuit_breaker=CircuitBreaker(failure_threshold=10**9),  # every call fails, by design
    )
    yield client
    client.close()


@settings(PROPERTY, max_examples=60)
@given(
    target=st.sampled_from(["openai:gpt-4.1-mini", "openai:o3", "ai21:jamba-mini"]),
    messages=messages,
    params=request_params,
)
def test_real_providers_check_and_encode_any_valid_request(
    offline_client: Client, target: str, messages: Any, params: dict[str, Any]
) -> None:
    # Nothing listens on the port: a request that got as far as the network is one the
    # provider accepted and encoded. Anything else must be refused as the caller's error.
    try:
        offline_client.chat(target, messages, **params)
    except InvalidRequestError as exc:
        assert exc.field or exc.provider, f"the error says nothing of its cause: {exc}"
    except APIConnectionError as exc:
        assert exc.provider == target.split(":", maxsplit=1)[0]
    else:
        pytest.fail("nothing listens on the port: the call cannot succeed")


header_value = st.one_of(
    st.text(max_size=40),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.sampled_from(
        [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "0",
            "-1",
            "1e309",
            "nan",
            "inf",
            " 3 ",
            "Mon, 32 Foo 2020",
        ]
    ),
)


@PROPERTY
@given(
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "Retry-After", "retry-after-ms", "x-other"]),
        header_value,
        max_size=3,
    )
)
def test_retry_after_parsing_never_raises_and_is_a_finite_wait(headers: dict[str, str]) -> None:
    wait = parse_retry_after(headers, now=1_700_000_000.0)
    assert wait is None or (wait >= 0 and not math.isnan(wait))


@PROPERTY
@given(
    max_attempts=st.one_of(st.integers(-2, 10), json_value),
    initial_delay=st.floats(allow_nan=True, allow_infinity=True, width=32),
    multiplier=st.floats(allow_nan=True, allow_infinity=True, width=32),
    deadline=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
)
def test_a_retry_policy_is_valid_or_refused_with_configuration_error(
    max_attempts: Any, initial_delay: float, multiplier: float, deadline: float | None
) -> None:
    from llmos import ConfigurationError

    try:
        policy = RetryPolicy(
            max_attempts=max_attempts,
            initial_delay=initial_delay,
            multiplier=multiplier,
            deadline=deadline,
        )
    except ConfigurationError:
        return
    for n in range(1, 4):
        wait = policy.backoff(n)
        assert wait >= 0 and not math.isnan(wait)
    assert policy.deadline is None or policy.deadline > 0
