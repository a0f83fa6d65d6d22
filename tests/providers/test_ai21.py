"""The AI21 (Jamba) provider through Client and AsyncClient, against the AI21 loopback server."""

from __future__ import annotations

import json
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from tests.servers.ai21_server import (
    ANSWER,
    JSON_ANSWER,
    TOOL_ARGUMENTS,
    create_app,
    prompt_tokens,
    token_count,
)
from tests.servers.base import LoopbackServer

from llmos import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigurationError,
    InvalidRequestError,
    InvalidResponseError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeout,
    UnsupportedFeatureError,
)
from llmos.errors import LLMOSError
from llmos.pricing.catalog import ModelDeprecationWarning, default_catalog
from llmos.providers import ai21
from llmos.retry import Clock

MODEL = "ai21:jamba-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class InstantClock(Clock):
    """Waits cost nothing; records what was asked."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class AI21Loopback:
    """The running AI21 loopback server and the state of its app."""

    def __init__(self, server: LoopbackServer, app: Any) -> None:
        self.server = server
        self.app = app
        self.url = server.url

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app.state.requests  # type: ignore[no-any-return]

    @property
    def headers(self) -> list[dict[str, str]]:
        return self.app.state.headers  # type: ignore[no-any-return]

    def total_hits(self) -> int:
        return self.server.total_hits()

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.app.state.failures.append((status, body, headers or {}))


@pytest.fixture(scope="module")
def running() -> Iterator[AI21Loopback]:
    app = create_app()
    with LoopbackServer(app) as server:
        yield AI21Loopback(server, app)


@pytest.fixture
def server(running: AI21Loopback) -> AI21Loopback:
    running.requests.clear()
    running.headers.clear()
    running.app.state.failures.clear()
    running.server.reset_hits()
    return running


def settings(server: AI21Loopback, **extra: Any) -> dict[str, Any]:
    return {"ai21": {"api_key": "test-key", "base_url": server.url + "/studio/v1", **extra}}


@pytest.fixture
def client(server: AI21Loopback) -> Iterator[Client]:
    with Client(retry=RetryPolicy(max_attempts=1), providers=settings(server), env={}) as c:
        yield c


@pytest.fixture
async def aclient(server: AI21Loopback) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        retry=RetryPolicy(max_attempts=1), providers=settings(server), env={}
    ) as c:
        yield c


# --------------------------------------------------------------------------- plain chat


def test_chat_returns_text_usage_and_ids(client: Client, server: AI21Loopback) -> None:
    r = client.chat(MODEL, "What is the capital of France?")

    assert r.text == ANSWER
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "stop"
    assert (r.provider, r.model, r.target) == ("ai21", "jamba-mini", MODEL)
    assert r.id is not None and r.id.startswith("chat-")
    body = server.requests[0]
    assert r.usage.prompt_tokens == prompt_tokens(body)
    assert r.usage.completion_tokens == token_count(ANSWER)
    assert r.usage.source == "provider"
    assert body == {
        "model": "jamba-mini",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }
    headers = server.headers[0]
    assert headers["authorization"] == "Bearer test-key"
    assert headers["user-agent"].startswith("llmos/")
    assert headers["content-type"] == "application/json"


def test_request_maps_every_parameter(client: Client, server: AI21Loopback) -> None:
    client.chat(
        MODEL,
        [
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
        ],
        max_tokens=4096,
        temperature=0.4,
        top_p=0.9,
        stop="\n\n",
        seed=7,
        extra_body={"mock_flag": True},
    )

    assert server.requests[0] == {
        "model": "jamba-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
        ],
        "max_tokens": 4096,
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "mock_flag": True,
    }


def test_missing_model_in_answer_falls_back_to_requested(client: Client) -> None:
    r = client.chat("ai21:jamba-large", "[[no-model]] hi")
    assert r.model == "jamba-large"
    assert r.text == ANSWER


def test_length_finish_is_normalised(client: Client) -> None:
    r = client.chat(MODEL, "[[length]] hi")
    assert (r.finish_reason, r.raw_finish_reason) == ("length", "length")


def test_lenient_parse_of_the_sdk_fixture_shape(client: Client, server: AI21Loopback) -> None:
    # The AI21 SDK's own test fixture: no object, created, model or token details; meta present.
    fixture = {
        "id": "chat-cc8ce5c05f1d4ed9b722123ac4a0f267",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_62136354",
                            "type": "function",
                            "function": {
                                "name": "get_delivery_date",
                                "arguments": '{"order_id":"order_12345"}',
                            },
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 144, "completion_tokens": 14, "total_tokens": 158},
        "meta": {"requestDurationMillis": 236},
    }
    server.fail_next(200, fixture, {})

    r = client.chat(MODEL, "When does order_12345 arrive?")

    assert r.model == "jamba-mini"
    assert r.text == ""
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls[0].id == "call_62136354"
    assert r.tool_calls[0].parsed_arguments() == {"order_id": "order_12345"}
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        144,
        14,
        158,
    )


def test_logprobs_returned_by_the_server_are_parsed(client: Client, server: AI21Loopback) -> None:
    answer = {
        "id": "chat-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi"},
                "logprobs": {
                    "content": [
                        {
                            "token": "Hi",
                            "logprob": -0.25,
                            "top_logprobs": [{"token": "Hello", "logprob": -1.5}],
                        }
                    ]
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    server.fail_next(200, answer, {})
    r = client.chat(MODEL, "hi", extra_body={"logprobs": True})
    assert r.logprobs is not None
    assert (r.logprobs[0].token, r.logprobs[0].logprob) == ("Hi", -0.25)
    assert r.logprobs[0].top_logprobs[0].token == "Hello"


@pytest.mark.parametrize(
    "body",
    ["this is not json", {"choices": []}, {"choices": [{"index": 0}]}, ["a", "list"]],
    ids=["not-json", "no-choices", "no-message", "a-list"],
)
def test_unreadable_answers_raise_invalid_response(
    client: Client, server: AI21Loopback, body: Any
) -> None:
    server.fail_next(200, body, {})
    with pytest.raises(InvalidResponseError) as info:
        client.chat(MODEL, "hi")
    assert info.value.provider == "ai21"
    assert info.value.model == "jamba-mini"


# --------------------------------------------------------------------------- features


def test_tool_call_round_trip(client: Client, server: AI21Loopback) -> None:
    r = client.chat(MODEL, "Weather in Paris?", tools=[WEATHER_TOOL])

    assert r.finish_reason == "tool_calls"
    assert r.text == ""
    call = r.tool_calls[0]
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Paris"}
    assert server.requests[0]["tools"] == [WEATHER_TOOL]

    follow_up: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    r2 = client.chat(MODEL, follow_up, tools=[WEATHER_TOOL])

    assert r2.text == ANSWER
    assert server.requests[1]["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]


def test_tool_choice_none_sends_no_tools(client: Client, server: AI21Loopback) -> None:
    r = client.chat(MODEL, "Weather?", tools=[WEATHER_TOOL], tool_choice="none")
    assert r.text == ANSWER
    assert "tools" not in server.requests[0]


@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_forced_tool_choice_is_refused_before_sending(
    client: Client, server: AI21Loopback, choice: str
) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        client.chat(MODEL, "Weather?", tools=[WEATHER_TOOL], tool_choice=choice)
    assert info.value.feature == "tool_choice"
    assert "extra_body" in info.value.message
    assert server.total_hits() == 0


def test_json_object(client: Client, server: AI21Loopback) -> None:
    r = client.chat(MODEL, "Capital of France as JSON", response_format="json")
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert r.text == JSON_ANSWER
    assert json.loads(r.text) == {"answer": "Paris"}


class Answer(BaseModel):
    answer: str


@pytest.mark.parametrize(
    "fmt",
    [Answer, {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}],
    ids=["pydantic", "dict"],
)
def test_json_schema_is_refused_before_sending(
    client: Client, server: AI21Loopback, fmt: Any
) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        client.chat(MODEL, "Capital?", response_format=fmt)
    assert info.value.feature == "json_schema"
    assert "response_format='json'" in info.value.message
    assert server.total_hits() == 0


def test_documents_are_sent_for_grounding(client: Client, server: AI21Loopback) -> None:
    r = client.chat(
        MODEL,
        "Where is the Eiffel Tower?",
        documents=[
            {
                "content": "The Eiffel Tower is in Paris.",
                "id": "doc-1",
                "metadata": {"src": "wiki"},
            },
            "Paris is in France.",
        ],
    )
    assert server.requests[0]["documents"] == [
        {"content": "The Eiffel Tower is in Paris.", "id": "doc-1", "metadata": {"src": "wiki"}},
        {"content": "Paris is in France."},
    ]
    assert r.text == "According to document doc-1: The Eiffel Tower is in Paris."


def test_capabilities_are_data() -> None:
    caps = Client(env={}).provider("ai21").capabilities("jamba-large")
    assert caps.tools and caps.json_object and caps.streaming and caps.documents
    assert not caps.json_schema and not caps.embeddings and not caps.logprobs
    assert (caps.context_window, caps.max_output_tokens, caps.needs_key) == (256_000, 4096, True)
    assert "jamba-mini" in ai21.AI21Provider.known_models
    assert not any(m.startswith(("j1-", "j2-")) for m in ai21.AI21Provider.known_models)


# --------------------------------------------------------------------------- refused before sending


@pytest.mark.parametrize(
    ("model", "replacement"),
    [
        ("j2-ultra", "jamba-large"),
        ("j1-jumbo", "jamba-large"),
        ("j2-mid", "jamba-mini"),
        ("j2-light", "jamba-mini"),
        ("j1-large", "jamba-mini"),
        ("j2-grande-instruct", "jamba-mini"),
    ],
)
def test_retired_jurassic_models_fail_before_sending(
    client: Client, server: AI21Loopback, model: str, replacement: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat(f"ai21:{model}", "hi")
    assert info.value.field == "model"
    assert "retired" in info.value.message
    assert f"ai21:{replacement}" in info.value.message
    assert server.total_hits() == 0


def test_retired_model_fails_before_streaming(client: Client, server: AI21Loopback) -> None:
    with pytest.raises(InvalidRequestError, match="retired"):
        list(client.stream("ai21:j2-ultra", "hi"))
    assert server.total_hits() == 0


@pytest.mark.parametrize(
    ("model", "successor"),
    [
        ("jamba-mini-1.6", "jamba-mini"),
        ("jamba-large-1.6", "jamba-large"),
        ("jamba-instruct", "jamba-mini"),
        ("jamba-instruct-preview", "jamba-mini"),
    ],
)
def test_deprecated_model_warns_once_through_the_price_catalog_and_still_works(
    client: Client,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    successor: str,
) -> None:
    # The catalog owns deprecation warnings (once per model per process); start from none shown.
    monkeypatch.setattr(default_catalog(), "_warned", set())
    with (
        caplog.at_level(logging.WARNING, logger="llmos"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        first = client.chat(f"ai21:{model}", "hi")
        client.chat(f"ai21:{model}", "hi again")
    assert first.text == ANSWER
    shown = [str(w.message) for w in caught if issubclass(w.category, ModelDeprecationWarning)]
    assert len(shown) == 1
    assert f"ai21:{model} was deprecated" in shown[0]
    assert f"its successor is ai21:{successor}." in shown[0]
    # One log line in all, the catalog's: the provider adds no warning of its own.
    logged = [r.getMessage() for r in caplog.records if model in r.getMessage()]
    assert logged == shown


def test_max_tokens_over_limit_fails_before_sending(client: Client, server: AI21Loopback) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat(MODEL, "hi", max_tokens=4097)
    assert info.value.field == "max_tokens"
    assert "4096 or less" in info.value.message
    assert server.total_hits() == 0


def test_extra_body_n_other_than_one_is_refused(client: Client, server: AI21Loopback) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat(MODEL, "hi", extra_body={"n": 2})
    assert info.value.field == "extra_body.n"
    assert server.total_hits() == 0


def test_missing_key_names_the_env_variable(server: AI21Loopback) -> None:
    providers = {"ai21": {"base_url": server.url + "/studio/v1"}}
    with Client(retry=RetryPolicy(max_attempts=1), providers=providers, env={}) as c:
        with pytest.raises(MissingAPIKeyError) as info:
            c.chat(MODEL, "hi")
    assert "AI21_API_KEY" in info.value.message
    assert server.total_hits() == 0


def test_key_and_base_url_from_environment(server: AI21Loopback) -> None:
    env = {"AI21_API_KEY": "env-key", "AI21_BASE_URL": server.url + "/studio/v1"}
    with Client(retry=RetryPolicy(max_attempts=1), env=env) as c:
        r = c.chat(MODEL, "hi")
    assert r.text == ANSWER
    assert server.headers[0]["authorization"] == "Bearer env-key"


# --------------------------------------------------------------------------- errors


ERROR_CASES = [
    (400, {"detail": "Invalid request body"}, InvalidRequestError, "Invalid request body"),
    (401, {"detail": "Forbidden: Bad or missing API token."}, AuthenticationError, "API token"),
    (403, {"detail": "Forbidden"}, PermissionDeniedError, "Forbidden"),
    (404, {"detail": "Not Found"}, NotFoundError, "Not Found"),
    (408, {"detail": "Request Timeout"}, APITimeoutError, "Request Timeout"),
    (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "messages", 0, "content"],
                    "msg": "Input should be a valid string",
                    "type": "string_type",
                }
            ]
        },
        InvalidRequestError,
        "messages.0.content: Input should be a valid string",
    ),
    (424, {"detail": "Model failed on this input"}, ServerError, "Model failed"),
    (429, {"detail": "Too many requests"}, RateLimitError, "Too many requests"),
    (500, {"detail": "Internal Server Error"}, ServerError, "Internal Server Error"),
    (503, {"detail": "Service Unavailable"}, ServerError, "Service Unavailable"),
    (530, {"detail": "Internal dependency failed"}, ServerError, "Internal dependency"),
    (502, "<html><title>502 Bad Gateway</title></html>", ServerError, "HTML page"),
]


@pytest.mark.parametrize(
    ("status", "body", "error_type", "text"), ERROR_CASES, ids=[str(c[0]) for c in ERROR_CASES]
)
def test_error_shapes_map_to_llmos_errors(
    client: Client,
    server: AI21Loopback,
    status: int,
    body: Any,
    error_type: type[LLMOSError],
    text: str,
) -> None:
    server.fail_next(status, body, {"x-request-id": f"req-{status}"})
    with pytest.raises(error_type) as info:
        client.chat(MODEL, "hi")
    err = info.value
    assert type(err) is error_type
    assert err.status_code == status
    assert text in err.message
    assert err.request_id == f"req-{status}"
    assert (err.provider, err.model) == ("ai21", "jamba-mini")
    assert server.total_hits() == 1


def test_model_error_424_is_not_retried(server: AI21Loopback) -> None:
    server.fail_next(424, {"detail": "Model failed on this input"}, {})
    clock = InstantClock()
    with Client(
        retry=RetryPolicy(max_attempts=3), providers=settings(server), env={}, clock=clock
    ) as c:
        with pytest.raises(ServerError):
            c.chat(MODEL, "hi")
    assert server.total_hits() == 1


def test_rate_limit_carries_retry_after_and_is_retried(server: AI21Loopback) -> None:
    server.fail_next(429, {"detail": "Too many requests"}, {"retry-after": "7"})
    clock = InstantClock()
    with Client(
        retry=RetryPolicy(max_attempts=2), providers=settings(server), env={}, clock=clock
    ) as c:
        r = c.chat(MODEL, "hi")
    assert r.text == ANSWER
    assert clock.slept == [7.0]
    assert [a.ok for a in r.attempts] == [False, True]
    assert server.total_hits() == 2


def test_server_side_validation_detail_list(client: Client, server: AI21Loopback) -> None:
    # extra_body bypasses llmos's own checks, so the server's 422 list body is what comes back.
    with pytest.raises(InvalidRequestError) as info:
        client.chat(MODEL, "hi", extra_body={"response_format": {"type": "json_schema"}})
    assert info.value.status_code == 422
    assert "response_format.type: Input should be 'text' or 'json_object'" in info.value.message


def test_key_is_redacted_from_echoed_errors(client: Client, server: AI21Loopback) -> None:
    server.fail_next(401, {"detail": "key test-key is not valid"}, {})
    with pytest.raises(AuthenticationError) as info:
        client.chat(MODEL, "hi")
    assert "test-key" not in str(info.value)
    assert "test-key" not in info.value.message


def test_unreachable_server_is_a_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    providers = {"ai21": {"api_key": "k", "base_url": f"http://127.0.0.1:{port}/studio/v1"}}
    with Client(retry=RetryPolicy(max_attempts=1), providers=providers, env={}) as c:
        with pytest.raises(APIConnectionError) as info:
            c.chat(MODEL, "hi")
    assert info.value.provider == "ai21"


def test_read_timeout_is_an_api_timeout(client: Client) -> None:
    with pytest.raises(APITimeoutError) as info:
        client.chat(MODEL, "[[slow]] hi", timeout=Timeout(read=0.2))
    assert info.value.provider == "ai21"


def test_silent_stream_times_out(client: Client) -> None:
    seen: list[str] = []
    with pytest.raises(APITimeoutError):
        for event in client.stream(MODEL, "[[slow]] hi", timeout=Timeout(read=0.2)):
            seen.append(event.delta)
    assert seen == ["The capital"]


def test_invalid_base_url_is_a_configuration_error() -> None:
    providers = {"ai21": {"api_key": "k", "base_url": "http://[::1/studio/v1"}}
    with Client(retry=RetryPolicy(max_attempts=1), providers=providers, env={}) as c:
        with pytest.raises(ConfigurationError, match="base_url"):
            c.chat(MODEL, "hi")


def test_in_body_error_on_200_is_mapped(client: Client, server: AI21Loopback) -> None:
    server.fail_next(200, {"detail": "Model overloaded", "status": 503}, {})
    with pytest.raises(ServerError) as info:
        client.chat(MODEL, "hi")
    assert info.value.status_code == 503
    assert "Model overloaded" in info.value.message


# --------------------------------------------------------------------------- streaming


def test_stream_deltas_and_usage_from_last_chunk(client: Client, server: AI21Loopback) -> None:
    events = list(client.stream(MODEL, "What is the capital of France?"))

    deltas = [e.delta for e in events if e.type == "delta"]
    assert len(deltas) > 1
    assert all(deltas)
    assert "".join(deltas) == ANSWER
    final = events[-1]
    assert final.type == "final"
    assert sum(e.type == "final" for e in events) == 1
    body = server.requests[0]
    assert body["stream"] is True
    assert final.usage is not None
    assert final.usage.prompt_tokens == prompt_tokens(body)
    assert final.usage.completion_tokens == token_count(ANSWER)
    assert final.usage.source == "provider"
    assert final.finish_reason == "stop"
    assert final.response is not None
    assert final.response.text == ANSWER
    assert final.response.model == "jamba-mini"
    assert final.response.id is not None and final.response.id.startswith("chat-")


def test_stream_and_chat_report_the_same_usage(client: Client) -> None:
    plain = client.chat(MODEL, "Same question")
    with client.stream(MODEL, "Same question") as stream:
        text = stream.text()
    assert text == plain.text
    assert stream.response is not None
    assert stream.response.usage.model_dump() == plain.usage.model_dump()


def test_stream_tool_call_fragments(client: Client) -> None:
    events = list(client.stream(MODEL, "Weather in Paris?", tools=[WEATHER_TOOL]))
    fragments = [e.tool_call for e in events if e.type == "tool_call"]
    assert len(fragments) >= 2
    response = events[-1].response
    assert response is not None
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].name == "get_weather"
    assert response.tool_calls[0].arguments == TOOL_ARGUMENTS


def test_stream_without_model_falls_back_to_requested(client: Client) -> None:
    events = list(client.stream("ai21:jamba-large", "[[no-model]] hi"))
    assert events[-1].response is not None
    assert events[-1].response.model == "jamba-large"


def test_in_stream_error_after_content(client: Client) -> None:
    seen: list[str] = []
    with pytest.raises(ServerError) as info:
        for event in client.stream(MODEL, "[[stream-error]] hi"):
            seen.append(event.delta)
    assert "model crashed mid-stream" in info.value.message
    assert info.value.provider == "ai21"
    assert "".join(seen) == "The capital of France"


def test_in_stream_detail_before_content(client: Client, server: AI21Loopback) -> None:
    with pytest.raises(ServerError) as info:
        list(client.stream(MODEL, "[[stream-detail]] hi"))
    assert info.value.status_code == 503
    assert "Model overloaded" in info.value.message
    assert server.total_hits() == 1


def test_in_stream_error_before_content_is_retried(server: AI21Loopback) -> None:
    clock = InstantClock()
    policy = RetryPolicy(max_attempts=2)
    with Client(retry=policy, providers=settings(server), env={}, clock=clock) as c:
        with pytest.raises(ServerError):
            list(c.stream(MODEL, "[[stream-detail]] hi"))
    assert server.total_hits() == 2
    assert len(clock.slept) == 1


def test_stream_cut_short_is_invalid_response(client: Client) -> None:
    with pytest.raises(InvalidResponseError, match="cut short"):
        list(client.stream(MODEL, "[[cut]] hi"))


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (429, {"detail": "Too many requests"}, RateLimitError),
        (
            422,
            {"detail": [{"loc": ["body", "max_tokens"], "msg": "too big", "type": "x"}]},
            InvalidRequestError,
        ),
        (401, {"detail": "Unauthorized"}, AuthenticationError),
    ],
)
def test_stream_http_errors(
    client: Client, server: AI21Loopback, status: int, body: Any, error_type: type[LLMOSError]
) -> None:
    server.fail_next(status, body, {"request-id": "rid-9"})
    with pytest.raises(error_type) as info:
        list(client.stream(MODEL, "hi"))
    assert info.value.status_code == status
    assert info.value.request_id == "rid-9"


def test_stream_answered_with_one_json_body(client: Client, server: AI21Loopback) -> None:
    whole = {
        "id": "chat-9",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    server.fail_next(200, whole, {})
    events = list(client.stream(MODEL, "hi"))
    assert [e.delta for e in events if e.type == "delta"] == ["Paris."]
    assert events[-1].usage is not None
    assert events[-1].usage.total_tokens == 7


# --------------------------------------------------------------------------- async


async def test_async_chat(aclient: AsyncClient, server: AI21Loopback) -> None:
    r = await aclient.chat(MODEL, "What is the capital of France?")
    assert r.text == ANSWER
    assert r.usage.completion_tokens == token_count(ANSWER)
    assert server.requests[0]["model"] == "jamba-mini"


async def test_async_stream(aclient: AsyncClient) -> None:
    deltas: list[str] = []
    final = None
    async for event in aclient.stream(MODEL, "What is the capital of France?"):
        if event.type == "final":
            final = event
        else:
            deltas.append(event.delta)
    assert "".join(deltas) == ANSWER
    assert final is not None and final.usage is not None
    assert final.usage.completion_tokens == token_count(ANSWER)


async def test_async_tools_and_documents(aclient: AsyncClient, server: AI21Loopback) -> None:
    r = await aclient.chat(MODEL, "Weather?", tools=[WEATHER_TOOL])
    assert r.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    r2 = await aclient.chat(MODEL, "Where?", documents=["Paris is in France."])
    assert r2.text == "According to document 0: Paris is in France."
    assert server.requests[1]["documents"] == [{"content": "Paris is in France."}]


async def test_async_stream_tool_calls(aclient: AsyncClient) -> None:
    stream = aclient.stream(MODEL, "Weather?", tools=[WEATHER_TOOL])
    await stream.text()
    assert stream.response is not None
    assert stream.response.tool_calls[0].arguments == TOOL_ARGUMENTS


async def test_async_error_shape(aclient: AsyncClient, server: AI21Loopback) -> None:
    server.fail_next(404, {"detail": "Not Found"}, {"x-request-id": "req-a"})
    with pytest.raises(NotFoundError) as info:
        await aclient.chat(MODEL, "hi")
    assert (info.value.status_code, info.value.request_id) == (404, "req-a")


async def test_async_refusals_send_nothing(aclient: AsyncClient, server: AI21Loopback) -> None:
    with pytest.raises(InvalidRequestError, match="jamba-large"):
        await aclient.chat("ai21:j2-ultra", "hi")
    with pytest.raises(InvalidRequestError, match="4096"):
        await aclient.chat(MODEL, "hi", max_tokens=10_000)
    with pytest.raises(UnsupportedFeatureError):
        await aclient.chat(MODEL, "hi", response_format=Answer)
    assert server.total_hits() == 0


async def test_async_missing_key(server: AI21Loopback) -> None:
    providers = {"ai21": {"base_url": server.url + "/studio/v1"}}
    async with AsyncClient(providers=providers, env={}) as c:
        with pytest.raises(MissingAPIKeyError, match="AI21_API_KEY"):
            await c.chat(MODEL, "hi")
    assert server.total_hits() == 0


async def test_async_in_stream_errors(aclient: AsyncClient) -> None:
    seen: list[str] = []
    with pytest.raises(ServerError, match="crashed"):
        async for event in aclient.stream(MODEL, "[[stream-error]] hi"):
            seen.append(event.delta)
    assert "".join(seen) == "The capital of France"
    with pytest.raises(InvalidResponseError, match="cut short"):
        await aclient.stream(MODEL, "[[cut]] hi").text()


async def test_async_stream_http_error(aclient: AsyncClient, server: AI21Loopback) -> None:
    server.fail_next(503, {"detail": "Service Unavailable"}, {"x-request-id": "req-s"})
    with pytest.raises(ServerError) as info:
        await aclient.stream(MODEL, "hi").text()
    assert (info.value.status_code, info.value.request_id) == (503, "req-s")
