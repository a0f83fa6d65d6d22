"""One conformance suite, table-driven over every provider.

Each remote provider runs against its own loopback server replaying the documented payloads and
quirks (tests/servers/); ``local`` runs the real embedded model; the ``openai-compatible`` kind
also runs against llama-cpp-python's real server. The same checks apply to every target: chat,
stream, tools and JSON output where the target supports them (and a refusal before sending where
it does not), and error mapping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, Field
from tests.servers import ai21_server, hf_router_server, openai_server, tgi_server
from tests.servers.base import LoopbackServer
from tests.servers.llama_server import LlamaServer, shared_llama_server

from llmos import (
    AuthenticationError,
    Client,
    ContextLengthError,
    InvalidRequestError,
    LLMOSError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnsupportedFeatureError,
)

QUESTION = "What is the capital of France?"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
REQUEST_ID = "req-conformance-1"


class Answer(BaseModel):
    # The length cap lets a JSON-schema grammar (local) finish within a small max_tokens.
    answer: str = Field(max_length=12)


ErrorCase = tuple[int, Any, type[LLMOSError]]


def _openai_error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


OPENAI_ERRORS: list[ErrorCase] = [
    (
        400,
        _openai_error(
            "maximum context length is 8192 tokens",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        ContextLengthError,
    ),
    (
        401,
        _openai_error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        AuthenticationError,
    ),
    (
        404,
        _openai_error("The model does not exist", "invalid_request_error", "model_not_found"),
        NotFoundError,
    ),
    (
        429,
        _openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        RateLimitError,
    ),
    (
        429,
        _openai_error(
            "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
        ),
        QuotaExceededError,
    ),
    (500, _openai_error("The server had an error", "server_error", None), ServerError),
]
AI21_ERRORS: list[ErrorCase] = [
    (401, {"detail": "Forbidden: invalid API key"}, AuthenticationError),
    (404, {"detail": "Not Found"}, NotFoundError),
    (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "temperature"],
                    "msg": "ensure this value is less than or equal to 2",
                    "type": "value_error",
                }
            ]
        },
        InvalidRequestError,
    ),
    (429, {"detail": "Too many requests"}, RateLimitError),
    (500, {"detail": "Internal Server Error"}, ServerError),
]
HF_ERRORS: list[ErrorCase] = [
    (401, {"error": "Invalid credentials in Authorization header"}, AuthenticationError),
    (
        422,
        {
            "error": "Input validation error: `temperature` must be strictly positive",
            "error_type": "validation",
        },
        InvalidRequestError,
    ),
    (429, {"error": "Model is overloaded", "error_type": "overloaded"}, RateLimitError),
    (500, {"error": "Request failed during generation", "error_type": "incomplete"}, ServerError),
    (402, {"error": "You have exceeded your monthly included credits"}, QuotaExceededError),
]


@dataclass
class Spec:
    """A provider under test: how to reach it and what it supports."""

    name: str
    model: str
    app: Callable[[], Any] | None
    providers: Callable[[str], dict[str, Any]]
    tools: bool
    json_schema: bool
    errors: list[ErrorCase] = field(default_factory=list)
    exact_answer: bool = True  # loopback servers answer "... Paris."; a real model may differ
    real_server: bool = False  # llama-cpp-python's own server instead of a loopback app


SPECS = [
    Spec(
        "openai",
        "openai:gpt-4.1-mini",
        openai_server.create_app,
        lambda url: {"openai": {"api_key": "sk-test-conformance", "base_url": url + "/v1"}},
        tools=True,
        json_schema=True,
        errors=OPENAI_ERRORS,
    ),
    Spec(
        "ai21",
        "ai21:jamba-mini",
        ai21_server.create_app,
        lambda url: {"ai21": {"api_key": "ai21-test-key", "base_url": url + "/studio/v1"}},
        tools=True,
        json_schema=False,
        errors=AI21_ERRORS,
    ),
    Spec(
        "huggingface-router",
        "huggingface:meta-llama/Llama-3.1-8B-Instruct:cerebras",
        hf_router_server.create_app,
        lambda url: {
            "huggingface": {"api_key": "hf_testtoken1234", "base_url": url + "/v1", "api": "router"}
        },
        tools=True,
        json_schema=True,
        errors=HF_ERRORS,
    ),
    Spec(
        "huggingface-tgi",
        "huggingface:tgi",
        tgi_server.create_app,
        lambda url: {"huggingface": {"base_url": url, "api": "generate"}},
        tools=False,
        json_schema=True,
        errors=HF_ERRORS,
    ),
    Spec(
        "openai-compatible",
        "box:served-model",
        openai_server.create_app,
        lambda url: {
            "box": {
                "kind": "openai-compatible",
                "base_url": url + "/v1",
                "capabilities": {"tools": True, "json_schema": True, "json_object": True},
            }
        },
        tools=True,
        json_schema=True,
        errors=OPENAI_ERRORS,
    ),
    Spec(
        "local",
        "local:gemma-3-270m",
        None,
        lambda url: {},
        tools=False,
        json_schema=True,
        exact_answer=False,
    ),
    Spec(
        "openai-compatible-llama-cpp-server",
        "llamacpp-server:gemma",
        None,
        lambda url: {"llamacpp-server": {"base_url": url + "/v1"}},
        tools=False,
        json_schema=True,
        exact_answer=False,
        real_server=True,
    ),
]


@dataclass
class Target:
    spec: Spec
    client: Client
    server: LoopbackServer | None

    def hits(self) -> int:
        return self.server.total_hits() if self.server is not None else 0

    def fail_next(self, status: int, body: Any) -> None:
        assert self.server is not None
        self.server_app.state.failures.append((status, body, {"x-request-id": REQUEST_ID}))

    @property
    def server_app(self) -> Any:
        assert self.server is not None
        return self.server._server.config.app.app


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from shared_llama_server(tmp_path_factory)


@pytest.fixture(params=SPECS, ids=[s.name for s in SPECS])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    spec: Spec = request.param
    if spec.real_server:
        llama = request.getfixturevalue("llama_server")
        client = Client(providers=spec.providers(llama.url), retry=RetryPolicy.none(), env={})
        try:
            yield Target(spec, client, None)
        finally:
            client.close()
        return
    if spec.app is None:
        local_client = request.getfixturevalue("local_client")
        yield Target(spec, local_client, None)
        return
    with LoopbackServer(spec.app()) as server:
        client = Client(providers=spec.providers(server.url), retry=RetryPolicy.none(), env={})
        try:
            yield Target(spec, client, server)
        finally:
            client.close()


def test_chat(target: Target) -> None:
    response = target.client.chat(target.spec.model, QUESTION, max_tokens=24, temperature=0)
    assert response.target == target.spec.model
    assert response.provider == target.spec.model.split(":", 1)[0]
    assert "Paris" in response.text
    if target.spec.exact_answer:
        assert response.text == "The capital of France is Paris."
    assert response.finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.latency.total_s > 0
    assert [a.ok for a in response.attempts] == [True]


def test_stream(target: Target) -> None:
    events = list(target.client.stream(target.spec.model, QUESTION, max_tokens=24, temperature=0))
    deltas = [e for e in events if not e.is_final]
    final = events[-1]
    assert final.is_final and sum(e.is_final for e in events) == 1
    assert deltas and all(e.delta or e.tool_call for e in deltas)
    assert final.response is not None
    assert "".join(e.delta for e in deltas) == final.response.text
    assert "Paris" in final.response.text
    assert final.usage is not None and final.usage.completion_tokens > 0
    assert final.usage.source in ("provider", "tokenizer", "approximate")
    assert final.finish_reason in ("stop", "length")


def test_tools_or_refusal(target: Target) -> None:
    if not target.spec.tools:
        before = target.hits()
        with pytest.raises(UnsupportedFeatureError) as info:
            target.client.chat(target.spec.model, "Weather in Paris?", tools=TOOLS)
        assert info.value.feature == "tools"
        assert target.hits() == before  # refused before anything was sent
        return
    response = target.client.chat(target.spec.model, "Weather in Paris?", tools=TOOLS)
    assert response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert call.name == "get_weather" and call.parsed_arguments() == {"city": "Paris"}
    streamed = list(target.client.stream(target.spec.model, "Weather in Paris?", tools=TOOLS))
    final = streamed[-1].response
    assert final is not None and final.finish_reason == "tool_calls"
    assert [c.parsed_arguments() for c in final.tool_calls] == [{"city": "Paris"}]


def test_json_output(target: Target) -> None:
    prompt = "Answer in JSON: what is the capital of France?"
    # Every target here gives JSON objects; a schema only where json_schema is declared.
    plain = target.client.chat(
        target.spec.model, prompt, response_format="json", max_tokens=32, temperature=0
    )
    if target.spec.exact_answer or plain.finish_reason == "stop":
        assert isinstance(json.loads(plain.text), dict)
    else:  # a small model's object cut short by max_tokens: still JSON as far as it went
        assert plain.finish_reason == "length" and plain.text.lstrip().startswith("{")
    if not target.spec.json_schema:
        before = target.hits()
        with pytest.raises(UnsupportedFeatureError) as info:
            target.client.chat(target.spec.model, prompt, response_format=Answer)
        assert info.value.feature == "json_schema" and target.hits() == before
        return
    response = target.client.chat(
        target.spec.model, prompt, response_format=Answer, max_tokens=32, temperature=0
    )
    data = json.loads(response.text)
    assert isinstance(data, dict)
    if target.spec.exact_answer:
        assert data == {"answer": "Paris"}
        assert response.parsed == Answer(answer="Paris")
    else:
        # A real 270M model under a JSON-schema grammar gives JSON of the schema's shape.
        assert set(data) == {"answer"} and isinstance(response.parsed, Answer)


def test_error_mapping(target: Target) -> None:
    if target.server is None:
        # No wire to inject faults into: the typed error both share is the context-length check
        # (the local provider's own, or llama.cpp server's 400 context_length_exceeded).
        with pytest.raises(ContextLengthError) as info:
            target.client.chat(target.spec.model, "word " * 5000, max_tokens=16)
        assert info.value.provider == target.spec.model.split(":", 1)[0]
        return
    for status, body, expected in target.spec.errors:
        target.fail_next(status, body)
        before = target.hits()
        with pytest.raises(LLMOSError) as info:
            target.client.chat(target.spec.model, QUESTION, max_tokens=8)
        error = info.value
        assert type(error) is expected, (status, body, type(error))
        assert error.status_code == status
        assert error.request_id == REQUEST_ID
        assert error.provider == target.spec.model.split(":", 1)[0]
        assert error.message and "HTTP" not in error.message[:4]
        assert target.hits() == before + 1  # exactly one request: no retry under none()
