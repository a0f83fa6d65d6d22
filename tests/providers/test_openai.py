"""The OpenAI provider through Client and AsyncClient, against the OpenAI loopback server.

The last test points the same provider, by base_url, at a real llama-cpp-python server.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel
from tests.fakes import FakeClock
from tests.servers.base import LoopbackServer
from tests.servers.llama_server import LlamaServer, shared_llama_server
from tests.servers.openai_server import (
    ANSWER,
    ANSWER_PIECES,
    ERRORS,
    JSON_ANSWER,
    TOOL_ARGUMENTS,
    USAGE,
    create_app,
    error_body,
)

from llmos import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    InvalidResponseError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeout,
    ToolCall,
    UnsupportedFeatureError,
)
from llmos.errors import LLMOSError
from llmos.providers.openai import OpenAIProvider, models_available_on

KEY = "sk-loopback-test-key-0123456789"
MODEL = "openai:gpt-4o-mini"
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


class Answer(BaseModel):
    answer: str


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    app = create_app()
    with LoopbackServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def app(loopback: LoopbackServer) -> Any:
    app = loopback.app  # type: ignore[attr-defined]
    app.state.requests.clear()
    app.state.headers.clear()
    app.state.failures.clear()
    loopback.reset_hits()
    return app


def settings(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {"openai": {"base_url": server.url + "/v1", "api_key": KEY, **extra}}


@pytest.fixture
def client(loopback: LoopbackServer, app: Any) -> Iterator[Client]:
    with Client(providers=settings(loopback), retry=RetryPolicy.none(), env={}) as c:
        yield c


@pytest.fixture
async def aclient(loopback: LoopbackServer, app: Any) -> Any:
    async with AsyncClient(providers=settings(loopback), retry=RetryPolicy.none(), env={}) as c:
        yield c


def _error(call: Any) -> LLMOSError:
    with pytest.raises(LLMOSError) as info:
        call()
    return info.value


# --------------------------------------------------------------------------- chat


def test_chat_returns_the_answer_usage_and_ids(client: Client, app: Any) -> None:
    r = client.chat(MODEL, "What is the capital of France?")

    assert r.text == ANSWER
    assert r.id == "chatcmpl-1"
    assert (r.provider, r.model, r.target) == ("openai", "gpt-4o-mini", MODEL)
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "stop")
    assert r.tool_calls == []
    assert r.usage.source == "provider"
    assert r.usage.prompt_tokens == USAGE["prompt_tokens"]
    assert r.usage.completion_tokens == USAGE["completion_tokens"]
    assert r.usage.total_tokens == USAGE["total_tokens"]
    assert r.usage.cached_tokens == USAGE["prompt_tokens_details"]["cached_tokens"]
    assert r.usage.cache_write_tokens == USAGE["prompt_tokens_details"]["cache_write_tokens"]
    assert r.usage.reasoning_tokens == USAGE["completion_tokens_details"]["reasoning_tokens"]
    assert [a.ok for a in r.attempts] == [True]
    assert app.state.requests == [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }
    ]


def test_chat_sends_sampling_parameters_as_openai_names_them(client: Client, app: Any) -> None:
    client.chat(
        MODEL,
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop=["\n\n"],
        seed=42,
        extra_body={"service_tier": "flex"},
    )
    body = app.state.requests[0]
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"]
    assert body["seed"] == 42
    assert body["service_tier"] == "flex"
    # The loopback server is not api.openai.com: an OpenAI-compatible host gets max_tokens.
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body


def test_key_is_sent_as_bearer_and_never_appears_in_errors(client: Client, app: Any) -> None:
    app.state.failures.append((401, error_body(f"Incorrect API key provided: {KEY}."), {}))
    error = _error(lambda: client.chat(MODEL, "Hi"))

    assert app.state.headers[0]["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(error) and KEY not in repr(error) and KEY not in error.message


def test_max_tokens_goes_out_as_max_completion_tokens_to_openai_hosts() -> None:
    def param(**config: Any) -> str:
        with Client(providers={"openai": {"api_key": KEY, **config}}, env={}) as c:
            provider = c.provider("openai")
            assert isinstance(provider, OpenAIProvider)
            return provider.max_tokens_param

    assert param() == "max_completion_tokens"
    assert param(base_url="https://api.openai.com/v1") == "max_completion_tokens"
    assert param(base_url="https://us.api.openai.com/v1") == "max_completion_tokens"
    assert param(base_url="http://localhost:8000/v1") == "max_tokens"
    assert param(base_url="https://gpu-box.internal/v1") == "max_tokens"


def test_max_completion_tokens_is_what_reasoning_models_accept(
    loopback: LoopbackServer, app: Any
) -> None:
    forced = settings(loopback, max_tokens_param="max_completion_tokens")
    with Client(providers=forced, retry=RetryPolicy.none(), env={}) as c:
        r = c.chat("openai:gpt-5-mini", "Hi", max_tokens=100)
    assert r.text == ANSWER
    assert app.state.requests[0]["max_completion_tokens"] == 100
    assert "max_tokens" not in app.state.requests[0]

    # Sent as max_tokens, the server refuses it as OpenAI does for reasoning models.
    with Client(providers=settings(loopback), retry=RetryPolicy.none(), env={}) as c:
        error = _error(lambda: c.chat("openai:gpt-5-mini", "Hi", max_tokens=100))
    assert type(error) is InvalidRequestError
    assert error.provider_code == "unsupported_parameter"


def test_a_short_max_tokens_ends_with_finish_reason_length(client: Client) -> None:
    r = client.chat(MODEL, "Hi", max_tokens=3)
    assert r.text == "".join(ANSWER_PIECES[:3])
    assert (r.finish_reason, r.raw_finish_reason) == ("length", "length")
    assert r.usage.completion_tokens == 3


def test_max_tokens_over_the_model_limit_is_refused_before_sending(
    client: Client, app: Any
) -> None:
    error = _error(lambda: client.chat(MODEL, "Hi", max_tokens=20000))
    assert isinstance(error, InvalidRequestError)
    assert "16384" in error.message
    assert app.state.requests == []


# --------------------------------------------------------------------------- streams


def test_stream_deltas_add_up_to_the_text_and_the_final_event_has_usage(
    client: Client, app: Any
) -> None:
    events = list(client.stream(MODEL, "What is the capital of France?"))

    content, final = events[:-1], events[-1]
    assert [e.type for e in content] == ["delta"] * len(ANSWER_PIECES)
    assert [e.delta for e in content] == ANSWER_PIECES
    assert final.type == "final"
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.source == "provider"
    assert final.usage.prompt_tokens == USAGE["prompt_tokens"]
    assert final.usage.cached_tokens == USAGE["prompt_tokens_details"]["cached_tokens"]
    assert final.response is not None
    assert final.response.text == ANSWER
    assert final.response.id == "chatcmpl-1"
    assert app.state.requests[0]["stream"] is True
    assert app.state.requests[0]["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_fragments_are_assembled(client: Client, app: Any) -> None:
    events = list(client.stream(MODEL, "Weather in Paris?", tools=[WEATHER_TOOL]))

    fragments = [e.tool_call for e in events if e.type == "tool_call"]
    assert len(fragments) == 4
    assert fragments[0] is not None and fragments[0].name == "get_weather"
    assert "".join(f.arguments for f in fragments if f is not None) == TOOL_ARGUMENTS
    response = events[-1].response
    assert response is not None
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCall(id="call_1", name="get_weather", arguments=TOOL_ARGUMENTS)
    ]
    assert response.text == ""


def test_stream_logprobs_are_collected(client: Client) -> None:
    events = list(client.stream(MODEL, "Hi", logprobs=True, top_logprobs=1))
    response = events[-1].response
    assert response is not None and response.logprobs is not None
    assert [t.token for t in response.logprobs] == ANSWER_PIECES
    assert all(len(t.top_logprobs) == 1 for t in response.logprobs)


def test_an_error_inside_the_stream_raises_the_mapped_error(client: Client) -> None:
    seen: list[str] = []
    with pytest.raises(ServerError) as info:
        for event in client.stream(MODEL, "__stream_error__"):
            seen.append(event.delta)
    assert seen == [ANSWER_PIECES[0]]
    assert "error inside the stream" in info.value.message
    assert "The server had an error" in info.value.message
    assert info.value.request_id == "req_1"
    assert info.value.provider == "openai"


def test_a_stream_that_ends_without_finishing_is_an_error(client: Client) -> None:
    with pytest.raises(InvalidResponseError, match="no finish_reason"):
        list(client.stream(MODEL, "__cut_stream__"))


def test_a_stream_without_usage_says_usage_is_missing(client: Client) -> None:
    final = list(client.stream(MODEL, "__no_usage__"))[-1]
    assert final.usage is not None and final.usage.source == "missing"
    assert client.chat(MODEL, "__no_usage__").usage.source == "missing"


def test_malformed_json_is_an_invalid_response(client: Client) -> None:
    with pytest.raises(InvalidResponseError):
        client.chat(MODEL, "__bad_json__")
    with pytest.raises(InvalidResponseError):
        list(client.stream(MODEL, "__bad_json__"))


# --------------------------------------------------------------------------- tools, JSON, logprobs


def test_tool_call_with_named_tool_choice(client: Client, app: Any) -> None:
    r = client.chat(MODEL, "Weather in Paris?", tools=[WEATHER_TOOL], tool_choice="get_weather")

    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == [ToolCall(id="call_1", name="get_weather", arguments=TOOL_ARGUMENTS)]
    assert r.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    body = app.state.requests[0]
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes_are_sent_as_strings(client: Client, app: Any, choice: str) -> None:
    r = client.chat(MODEL, "Weather?", tools=[WEATHER_TOOL], tool_choice=choice)
    assert app.state.requests[0]["tool_choice"] == choice
    assert r.finish_reason == ("stop" if choice == "none" else "tool_calls")


def test_tool_results_go_back_in_openai_shape(client: Client, app: Any) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
    ]
    r = client.chat(MODEL, messages, tools=[WEATHER_TOOL])

    assert r.text == ANSWER
    assert app.state.requests[0]["messages"] == messages


def test_legacy_function_call_counts_as_a_tool_call(client: Client) -> None:
    r = client.chat(MODEL, "__function_call__")
    assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "function_call")
    assert [c.name for c in r.tool_calls] == ["get_weather"]


def test_a_refusal_is_reported_as_content_filter(client: Client) -> None:
    r = client.chat(MODEL, "__refusal__")
    assert r.finish_reason == "content_filter"
    assert "cannot help" in r.text


def test_pydantic_response_format_gives_parsed_output(client: Client, app: Any) -> None:
    r = client.chat(MODEL, "Capital of France as JSON", response_format=Answer)

    assert r.text == JSON_ANSWER
    assert r.parsed == Answer(answer="Paris")
    assert app.state.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema()},
    }


def test_json_schema_dict_with_strict_is_sent_nested(client: Client, app: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}
    r = client.chat(MODEL, "JSON please", response_format=fmt)
    assert json.loads(r.text) == {"answer": "Paris"}
    assert app.state.requests[0]["response_format"] == fmt


def test_json_object_mode(client: Client, app: Any) -> None:
    r = client.chat(MODEL, "JSON please", response_format="json")
    assert json.loads(r.text) == {"answer": "Paris"}
    assert app.state.requests[0]["response_format"] == {"type": "json_object"}


def test_logprobs_come_back_per_token(client: Client, app: Any) -> None:
    r = client.chat(MODEL, "Hi", logprobs=True, top_logprobs=2)
    assert r.logprobs is not None
    assert [t.token for t in r.logprobs] == ANSWER_PIECES
    assert all(len(t.top_logprobs) == 2 for t in r.logprobs)
    assert r.logprobs[0].logprob == pytest.approx(-0.01)
    assert app.state.requests[0]["logprobs"] is True
    assert app.state.requests[0]["top_logprobs"] == 2


@pytest.mark.parametrize("model", ["openai:o3", "openai:gpt-5-mini", "openai:gpt-6-luna"])
def test_reasoning_models_refuse_logprobs_before_sending(
    client: Client, app: Any, model: str
) -> None:
    with pytest.raises(UnsupportedFeatureError):
        client.chat(model, "Hi", logprobs=True)
    assert app.state.requests == []


# --------------------------------------------------------------------------- embeddings


def test_embeddings_come_back_in_input_order_with_usage(client: Client, app: Any) -> None:
    r = client.embed("openai:text-embedding-3-small", ["first text", "second"])

    assert len(r.embeddings) == 2
    assert all(len(v) == 8 and all(isinstance(x, float) for x in v) for v in r.embeddings)
    assert r.embeddings[0] != r.embeddings[1]
    assert r.usage.prompt_tokens == 3
    assert r.usage.source == "provider"
    assert (r.provider, r.model) == ("openai", "text-embedding-3-small")
    # The SDK asks for base64 (smaller on the wire) and decodes it to floats.
    assert app.state.requests[0] == {
        "model": "text-embedding-3-small",
        "input": ["first text", "second"],
        "encoding_format": "base64",
    }


def test_embed_refuses_a_chat_model_before_sending(client: Client, app: Any) -> None:
    with pytest.raises(UnsupportedFeatureError, match="embedding model"):
        client.embed(MODEL, ["a"])
    assert app.state.requests == []


# --------------------------------------------------------------------------- errors

ERROR_CASES = [
    ("bad_request", InvalidRequestError, None),
    ("authentication", AuthenticationError, "invalid_api_key"),
    ("permission", PermissionDeniedError, "unsupported_country_region_territory"),
    ("not_found", NotFoundError, "model_not_found"),
    ("conflict", ConflictError, None),
    ("unprocessable", InvalidRequestError, None),
    ("rate_limit", RateLimitError, "rate_limit_exceeded"),
    ("insufficient_quota", QuotaExceededError, "insufficient_quota"),
    ("context_length", ContextLengthError, "context_length_exceeded"),
    ("server_error", ServerError, None),
    ("overloaded", ServerError, "engine_overloaded"),
]


@pytest.mark.parametrize(("name", "cls", "code"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_answers_map_to_llmos_errors(
    client: Client, app: Any, name: str, cls: type[LLMOSError], code: str | None
) -> None:
    status, body, _ = ERRORS[name]
    app.state.failures.append(ERRORS[name])
    error = _error(lambda: client.chat(MODEL, "Hi"))

    assert type(error) is cls
    assert error.status_code == status
    assert error.provider_code == code
    assert error.request_id == "req_1"
    assert error.message == body["error"]["message"]
    assert (error.provider, error.model) == ("openai", "gpt-4o-mini")


def test_rate_limit_carries_retry_after_and_is_retried_after_it(
    loopback: LoopbackServer, app: Any
) -> None:
    clock = FakeClock()
    app.state.failures.append(ERRORS["rate_limit"])
    with Client(
        providers=settings(loopback), retry=RetryPolicy(max_attempts=2), clock=clock, env={}
    ) as c:
        r = c.chat(MODEL, "Hi")
    assert r.text == ANSWER
    assert clock.slept == [1.5]  # retry-after-ms wins over retry-after
    assert [a.ok for a in r.attempts] == [False, True]
    assert r.attempts[0].status_code == 429
    assert loopback.total_hits("/v1/chat/completions") == 2


def test_quota_exhaustion_is_not_retried(loopback: LoopbackServer, app: Any) -> None:
    clock = FakeClock()
    app.state.failures.extend([ERRORS["insufficient_quota"]] * 3)
    with Client(
        providers=settings(loopback), retry=RetryPolicy(max_attempts=3), clock=clock, env={}
    ) as c:
        error = _error(lambda: c.chat(MODEL, "Hi"))
    assert isinstance(error, QuotaExceededError)
    assert loopback.total_hits("/v1/chat/completions") == 1
    assert clock.slept == []


def test_the_sdk_makes_exactly_one_request_per_attempt(client: Client, app: Any) -> None:
    # The openai SDK would retry a 500 twice on its own; llmos turns that off.
    app.state.failures.extend([ERRORS["server_error"]] * 3)
    with pytest.raises(ServerError):
        client.chat(MODEL, "Hi")
    assert len(app.state.requests) == 1


def test_stream_errors_before_the_first_event_map_the_same_way(client: Client, app: Any) -> None:
    app.state.failures.append(ERRORS["context_length"])
    with pytest.raises(ContextLengthError) as info:
        list(client.stream(MODEL, "Hi"))
    assert info.value.status_code == 400
    assert info.value.request_id == "req_1"


def test_an_html_error_page_is_described_not_dumped(client: Client, app: Any) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    app.state.failures.append((502, page, {"content-type": "text/html"}))
    error = _error(lambda: client.chat(MODEL, "Hi"))
    assert isinstance(error, ServerError)
    assert "502 Bad Gateway" in error.message and "<html>" not in error.message


def test_a_200_that_is_not_a_chat_completion_is_an_invalid_response(
    client: Client, app: Any
) -> None:
    page = "<html><head><title>Captive portal</title></head></html>"
    app.state.failures.append((200, page, {"content-type": "text/html"}))
    with pytest.raises(InvalidResponseError, match="instead of a chat completion"):
        client.chat(MODEL, "Hi")
    app.state.failures.append((200, {"id": "x", "choices": []}, {}))
    with pytest.raises(InvalidResponseError, match="no choices"):
        client.chat(MODEL, "Hi")


def test_sdk_debug_logs_never_show_the_key(
    client: Client, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.chat(MODEL, "Hi")
        app.state.failures.append(ERRORS["authentication"])
        with pytest.raises(AuthenticationError):
            client.chat(MODEL, "Hi")
        list(client.stream(MODEL, "Hi"))
    assert any(r.name.startswith("openai") for r in caplog.records)
    assert KEY not in caplog.text


def test_a_slow_server_raises_api_timeout_error(client: Client) -> None:
    with pytest.raises(APITimeoutError):
        client.chat(MODEL, "__sleep__:2", timeout=Timeout(connect=1, read=0.2))


def test_a_stream_that_stalls_after_the_first_token_times_out_without_a_retry(
    loopback: LoopbackServer, app: Any
) -> None:
    seen: list[str] = []
    with Client(providers=settings(loopback), retry=RetryPolicy(max_attempts=3), env={}) as c:
        with pytest.raises(APITimeoutError):
            for event in c.stream(MODEL, "__stall__:2", timeout=Timeout(connect=1, read=0.3)):
                seen.append(event.delta)
    assert seen == [ANSWER_PIECES[0]]
    assert len(app.state.requests) == 1  # content had reached the caller: no retry


def test_an_unreachable_server_raises_api_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {"openai": {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": KEY}}
    with Client(providers=config, retry=RetryPolicy.none(), env={}) as c:
        error = _error(lambda: c.chat(MODEL, "Hi"))
    assert type(error) is APIConnectionError
    assert f"127.0.0.1:{port}" in error.message


def test_content_filter_errors_map(client: Client, app: Any) -> None:
    body = error_body(
        "Your request was rejected by the safety system.", code="content_policy_violation"
    )
    app.state.failures.append((400, body, {}))
    assert isinstance(_error(lambda: client.chat(MODEL, "Hi")), ContentFilterError)


# --------------------------------------------------------------------------- configuration


def test_a_missing_key_names_the_variable_and_sends_nothing(
    loopback: LoopbackServer, app: Any
) -> None:
    config = {"openai": {"base_url": loopback.url + "/v1"}}
    with Client(providers=config, retry=RetryPolicy.none(), env={}) as c:
        with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
            c.chat(MODEL, "Hi")
    assert app.state.requests == []


def test_key_base_url_and_organization_come_from_the_client_env(
    loopback: LoopbackServer, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would read these from os.environ itself; llmos reads only the env it was given.
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-process-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-process-env")
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": loopback.url + "/v1",
        "OPENAI_ORG_ID": "org-from-client-env",
    }
    with Client(env=env, retry=RetryPolicy.none()) as c:
        assert c.chat(MODEL, "Hi").text == ANSWER
    headers = app.state.headers[0]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-from-client-env"
    assert "openai-project" not in headers


def test_project_and_custom_headers_from_settings(loopback: LoopbackServer, app: Any) -> None:
    config = settings(loopback, project="proj_1", headers={"X-Team": "search"})
    with Client(providers=config, retry=RetryPolicy.none(), env={}) as c:
        c.chat(MODEL, "Hi")
    assert app.state.headers[0]["openai-project"] == "proj_1"
    assert app.state.headers[0]["x-team"] == "search"


def test_capabilities_follow_the_model_family() -> None:
    with Client(providers={"openai": {"api_key": KEY}}, env={}) as c:
        caps = c.provider("openai").capabilities

        assert caps("gpt-4o-mini-2024-07-18").context_window == 128000
        assert caps("gpt-4o-mini").logprobs and caps("gpt-4o-mini").json_schema
        assert caps("gpt-4.1-mini").max_output_tokens == 32768
        assert not caps("o3").logprobs and caps("o3").tools
        assert caps("gpt-5-mini").context_window == 272000 and not caps("gpt-5-mini").logprobs
        assert caps("gpt-5.4").context_window == 1050000
        assert caps("gpt-5.4-mini").context_window == 272000
        assert caps("gpt-6-luna").context_window == 922000
        assert caps("ft:gpt-4o-mini:acme::abc123").context_window == 128000
        embedding = caps("text-embedding-3-small")
        assert embedding.embeddings and not embedding.tools and not embedding.streaming
        assert not caps("gpt-4o").embeddings
        unknown = caps("some-new-model")
        assert unknown.tools and unknown.json_object and unknown.streaming
        assert "retired" in " ".join(caps("gpt-3.5-turbo").notes)


def test_known_models_leave_out_retired_ones() -> None:
    listed = models_available_on(date(2026, 12, 1))
    for retired in (
        "gpt-4.1-nano",
        "o1",
        "o3-mini",
        "o4-mini",
        "gpt-3.5-turbo",
        "gpt-5-chat-latest",
    ):
        assert retired not in listed
    for current in (
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "gpt-5-mini",
        "gpt-6-sol",
        "text-embedding-3-small",
    ):
        assert current in listed
    assert "o3" not in models_available_on(date(2026, 12, 11))
    assert set(OpenAIProvider.known_models) == set(models_available_on(date.today()))


def test_importing_llmos_does_not_import_the_openai_sdk() -> None:
    code = (
        "import sys, llmos, llmos.providers.openai, llmos.providers.compatible; "
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- async


async def test_async_chat_stream_and_embed(aclient: AsyncClient, app: Any) -> None:
    r = await aclient.chat(MODEL, "Hi")
    assert r.text == ANSWER and r.usage.prompt_tokens == USAGE["prompt_tokens"]

    deltas, final = [], None
    async for event in aclient.stream(MODEL, "Weather?", tools=[WEATHER_TOOL]):
        if event.type == "final":
            final = event
        else:
            deltas.append(event)
    assert final is not None and final.response is not None
    assert final.response.tool_calls == [
        ToolCall(id="call_1", name="get_weather", arguments=TOOL_ARGUMENTS)
    ]
    assert final.usage is not None and final.usage.source == "provider"

    e = await aclient.embed("openai:text-embedding-3-small", "one")
    assert len(e.embeddings) == 1


async def test_async_errors_map_the_same_way(aclient: AsyncClient, app: Any) -> None:
    app.state.failures.append(ERRORS["insufficient_quota"])
    with pytest.raises(QuotaExceededError) as info:
        await aclient.chat(MODEL, "Hi")
    assert info.value.request_id == "req_1"

    with pytest.raises(ServerError, match="error inside the stream"):
        async for _ in aclient.stream(MODEL, "__stream_error__"):
            pass
    with pytest.raises(InvalidResponseError):
        async for _ in aclient.stream(MODEL, "__cut_stream__"):
            pass


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from shared_llama_server(tmp_path_factory)


@pytest.mark.slow
def test_openai_provider_pointed_at_a_real_llama_cpp_server(llama_server: LlamaServer) -> None:
    config = {"openai": {"base_url": llama_server.base_url, "api_key": "dummy-key"}}
    with Client(providers=config, retry=RetryPolicy.none(), env={}) as c:
        question = "What is the capital of France?"
        r = c.chat("openai:gemma", question, max_tokens=8, temperature=0)
        events = list(c.stream("openai:gemma", question, max_tokens=8, temperature=0))

    assert (r.provider, r.model, r.target) == ("openai", "gemma", "openai:gemma")
    assert r.id is not None and r.id.startswith("chatcmpl-")
    assert r.finish_reason in ("stop", "length")
    assert r.usage.source == "provider"
    assert 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0
    final = events[-1]
    assert final.type == "final" and final.response is not None
    assert all(e.type == "delta" and e.delta for e in events[:-1])
    assert final.response.text == "".join(e.delta for e in events[:-1])
    # llama-cpp-python ignores stream_options: the OpenAI provider reports usage as missing.
    assert final.usage is not None and final.usage.source == "missing"
