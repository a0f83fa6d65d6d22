"""The openai-compatible provider: named configs and presets, against the OpenAI loopback server
and a real llama-cpp-python server running the embedded Gemma 3 270M."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.llama_server import LlamaServer, shared_llama_server
from tests.servers.openai_server import ANSWER, ANSWER_PIECES, ERRORS, USAGE, create_app

from llmos import (
    AsyncClient,
    Client,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    RateLimitError,
    RetryPolicy,
    UnsupportedFeatureError,
)
from llmos.providers._chat_wire import normalise_finish_reason
from llmos.providers.compatible import NO_KEY, CompatibleProvider

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


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
    return app


def compat(server: LoopbackServer, name: str = "vllm", **extra: Any) -> Client:
    config = {name: {"kind": "openai-compatible", "base_url": server.url + "/v1", **extra}}
    return Client(providers=config, retry=RetryPolicy.none(), env={})


# --------------------------------------------------------------------------- named configs


def test_a_named_vllm_config_serves_chat_end_to_end(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback) as c:
        r = c.chat("vllm:meta-llama/Llama-3.1-8B-Instruct", "Hi", max_tokens=50)

    assert r.text == ANSWER
    assert (r.provider, r.model, r.target) == (
        "vllm",
        "meta-llama/Llama-3.1-8B-Instruct",
        "vllm:meta-llama/Llama-3.1-8B-Instruct",
    )
    assert r.usage.source == "provider" and r.usage.prompt_tokens == USAGE["prompt_tokens"]
    body = app.state.requests[0]
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_no_key_is_sent_unless_configured(
    loopback: LoopbackServer, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = "sk-real-openai-key-must-not-leak-123456"
    monkeypatch.setenv("OPENAI_API_KEY", real)
    config = {"vllm": {"kind": "openai-compatible", "base_url": loopback.url + "/v1"}}
    with Client(providers=config, env={"OPENAI_API_KEY": real}) as c:
        c.chat("vllm:m", "Hi")
    with compat(loopback, api_key="server-key-42") as c:
        c.chat("vllm:m", "Hi")

    assert app.state.headers[0]["authorization"] == f"Bearer {NO_KEY}"
    assert app.state.headers[1]["authorization"] == "Bearer server-key-42"
    assert all(real not in json.dumps(h) for h in app.state.headers)


def test_the_vllm_preset_takes_its_base_url_from_the_environment(
    loopback: LoopbackServer, app: Any
) -> None:
    env = {"LLMOS_VLLM_BASE_URL": loopback.url + "/v1"}
    with Client(env=env, retry=RetryPolicy.none()) as c:
        assert c.chat("vllm:qwen", "Hi").text == ANSWER
        provider = c.provider("vllm")
    assert isinstance(provider, CompatibleProvider) and provider.server == "vllm"


def test_a_config_without_base_url_says_how_to_fix_it(app: Any) -> None:
    config = {"gpu-box": {"kind": "openai-compatible"}}
    with Client(providers=config, env={}) as c:
        with pytest.raises(ConfigurationError) as info:
            c.chat("gpu-box:m", "Hi")
    assert "'gpu-box'" in info.value.message
    assert "base_url" in info.value.message and "LLMOS_GPU_BOX_BASE_URL" in info.value.message


def test_a_key_is_not_sent_over_plain_http_to_another_host() -> None:
    config = {
        "box": {
            "kind": "openai-compatible",
            "base_url": "http://gpu-box.invalid:8000/v1",
            "api_key": "sk-secret-0123456789",
        }
    }
    with Client(providers=config, env={}) as c:
        with pytest.raises(ConfigurationError, match="plain http"):
            c.chat("box:m", "Hi")


def test_unknown_server_names_are_rejected() -> None:
    config = {"box": {"kind": "openai-compatible", "base_url": "http://x/v1", "server": "tgi"}}
    with Client(providers=config, env={}) as c:
        with pytest.raises(ConfigurationError, match="unknown server 'tgi'"):
            c.provider("box")


def test_unknown_capability_names_are_rejected() -> None:
    with Client(
        providers={
            "box": {
                "kind": "openai-compatible",
                "base_url": "http://x/v1",
                "capabilities": {"tool": True},
            }
        },
        env={},
    ) as c:
        with pytest.raises(ConfigurationError, match="unknown capability 'tool'"):
            c.provider("box")


# --------------------------------------------------------------------------- streams and usage


def test_vllm_streams_ask_for_usage(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback) as c:
        events = list(c.stream("vllm:m", "Hi"))
    assert "".join(e.delta for e in events[:-1]) == ANSWER
    assert events[-1].usage is not None and events[-1].usage.source == "provider"
    assert app.state.requests[0]["stream_options"] == {"include_usage": True}


def test_llamacpp_streams_send_no_stream_options_and_count_usage_approximately(
    loopback: LoopbackServer, app: Any
) -> None:
    with compat(loopback, "llamacpp-server") as c:
        events = list(c.stream("llamacpp:m", "What is the capital of France?"))

    assert "stream_options" not in app.state.requests[0]
    usage = events[-1].usage
    assert usage is not None and usage.source == "approximate"
    assert usage.completion_tokens == len(ANSWER_PIECES)
    assert usage.prompt_tokens > 0


def test_stream_usage_can_be_switched_off_in_settings(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback, "box", stream_usage=False) as c:
        events = list(c.stream("box:m", "Hi"))
    assert "stream_options" not in app.state.requests[0]
    assert events[-1].usage is not None and events[-1].usage.source == "approximate"


# --------------------------------------------------------------------------- capabilities


def test_an_unknown_server_refuses_tools_and_says_how_to_declare_them(
    loopback: LoopbackServer, app: Any
) -> None:
    with compat(loopback, "box") as c:
        with pytest.raises(UnsupportedFeatureError) as info:
            c.chat("box:m", "Weather?", tools=[WEATHER_TOOL])
    assert "'capabilities': {'tools': True}" in info.value.message
    assert app.state.requests == []


def test_declared_capabilities_are_honoured(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback, "box", capabilities={"tools": True}) as c:
        r = c.chat("box:m", "Weather?", tools=[WEATHER_TOOL])
    assert r.finish_reason == "tool_calls" and r.tool_calls[0].name == "get_weather"


def test_llamacpp_gets_json_schema_as_a_json_object_with_schema(
    loopback: LoopbackServer, app: Any
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}
    with compat(loopback, "llamacpp-server") as c:
        r = c.chat("llamacpp:m", "JSON", response_format=fmt)
    assert json.loads(r.text) == {"answer": "Paris"}
    assert app.state.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_limits_can_be_declared(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback, "box", context_window=4096, max_output=256) as c:
        caps = c.provider("box").capabilities("m")
        assert (caps.context_window, caps.max_output_tokens) == (4096, 256)
        assert not caps.needs_key
        with pytest.raises(InvalidRequestError, match="256"):
            c.chat("box:m", "Hi", max_tokens=1000)
    assert app.state.requests == []


def test_server_profiles() -> None:
    with Client(env={}) as c:
        caps = {
            name: c.provider(name).capabilities("m")
            for name in ("vllm", "ollama", "lmstudio", "llamacpp-server")
        }
    assert caps["vllm"].tools and caps["vllm"].logprobs and caps["vllm"].embeddings
    assert caps["ollama"].tools and caps["ollama"].json_schema
    assert caps["lmstudio"].json_schema and not caps["lmstudio"].json_object
    llama = caps["llamacpp-server"]
    assert llama.json_object and not llama.tools and not llama.stream_usage


def test_embeddings_are_asked_for_as_floats(loopback: LoopbackServer, app: Any) -> None:
    with compat(loopback) as c:
        r = c.embed("vllm:bge-small", ["a", "b c"])
    assert len(r.embeddings) == 2 and r.usage.prompt_tokens == 3
    assert app.state.requests[0]["encoding_format"] == "float"
    with compat(loopback, "box") as c:
        with pytest.raises(UnsupportedFeatureError):
            c.embed("box:m", ["a"])


def test_errors_map_like_openai_errors(loopback: LoopbackServer, app: Any) -> None:
    app.state.failures.append(ERRORS["rate_limit"])
    with compat(loopback) as c:
        with pytest.raises(RateLimitError) as info:
            c.chat("vllm:m", "Hi")
    assert info.value.provider == "vllm" and info.value.retry_after == 1.5
    assert info.value.request_id == "req_1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("eos_token", "stop"),
        ("stop_sequence", "stop"),
        ("length", "length"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        (None, "stop"),
    ],
)
def test_finish_reasons_are_normalised(raw: str | None, expected: str) -> None:
    assert normalise_finish_reason(raw, has_tool_calls=False) == expected
    assert normalise_finish_reason(None, has_tool_calls=True) == "tool_calls"


async def test_async_chat_and_stream(loopback: LoopbackServer, app: Any) -> None:
    config = {"vllm": {"kind": "openai-compatible", "base_url": loopback.url + "/v1"}}
    async with AsyncClient(providers=config, retry=RetryPolicy.none(), env={}) as c:
        r = await c.chat("vllm:m", "Hi")
        text = await c.stream("vllm:m", "Hi").text()
    assert r.text == text == ANSWER


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from shared_llama_server(tmp_path_factory)


def real(server: LlamaServer) -> Client:
    config = {
        "llamacpp-server": {"base_url": server.base_url},
        "vllm": {"kind": "openai-compatible", "base_url": server.base_url, "server": "llamacpp"},
    }
    return Client(providers=config, retry=RetryPolicy.none(), env={})


QUESTION = "What is the capital of France?"


@pytest.mark.slow
def test_real_llama_server_chat(llama_server: LlamaServer) -> None:
    with real(llama_server) as c:
        r = c.chat("llamacpp:gemma", QUESTION, max_tokens=8, temperature=0)
    assert (r.provider, r.model) == ("llamacpp-server", "gemma")
    assert r.finish_reason in ("stop", "length")
    assert r.usage.source == "provider"
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.text


@pytest.mark.slow
def test_real_llama_server_stream_has_approximate_usage(llama_server: LlamaServer) -> None:
    with real(llama_server) as c:
        events = list(c.stream("llamacpp:gemma", QUESTION, max_tokens=8, temperature=0))
    content, final = events[:-1], events[-1]
    assert content and all(e.type == "delta" and e.delta for e in content)
    assert final.response is not None
    assert final.response.text == "".join(e.delta for e in content)
    assert final.usage is not None and final.usage.source == "approximate"
    assert final.usage.completion_tokens == len(content) <= 8


@pytest.mark.slow
def test_real_llama_server_under_a_vllm_style_named_config(llama_server: LlamaServer) -> None:
    with real(llama_server) as c:
        r = c.chat(
            "vllm:gemma",
            "Answer in JSON.",
            max_tokens=8,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
        )
        events = list(c.stream("vllm:gemma", QUESTION, max_tokens=4, temperature=0))
    assert r.provider == "vllm"
    assert r.text.lstrip().startswith("{")  # the schema became a grammar on the server
    assert events[-1].finish_reason in ("stop", "length")


@pytest.mark.slow
def test_real_llama_server_context_overflow_is_a_context_length_error(
    llama_server: LlamaServer,
) -> None:
    with real(llama_server) as c:
        with pytest.raises(ContextLengthError) as info:
            c.chat("llamacpp:gemma", "hello " * 3000, max_tokens=8)
    assert info.value.status_code == 400
    assert info.value.provider_code == "context_length_exceeded"
    assert info.value.request_id
