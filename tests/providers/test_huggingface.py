"""The Hugging Face provider through Client and AsyncClient, against router and TGI loopbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from tests.fakes import FakeClock
from tests.servers import hf_router_server, tgi_server
from tests.servers.base import LoopbackServer

from llmos import (
    AsyncClient,
    AuthenticationError,
    Client,
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
    UnsupportedFeatureError,
)
from llmos.errors import LLMOSError
from llmos.providers._chat_wire import normalise_finish_reason
from llmos.providers._tgi_wire import build_prompt
from llmos.providers.huggingface import HuggingFaceProvider, ModelLoadingError
from llmos.types import UserMessage

KEY = "hf_loopbacktesttoken123"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
ANSWER = "The capital of France is Paris."
QUESTION = "What is the capital of France?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class Answer(BaseModel):
    answer: str


class Loop:
    """A loopback server and its app, reset before each test."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.server = LoopbackServer(app)

    @property
    def state(self) -> Any:
        return self.app.state

    def reset(self) -> None:
        for name in ("requests", "headers", "failures", "bill_to", "models"):
            if hasattr(self.state, name):
                getattr(self.state, name).clear()
        self.state.count = 0
        self.state.chat_route = True
        self.state.token = None
        self.server.reset_hits()


@pytest.fixture(scope="module")
def _router_loop() -> Iterator[Loop]:
    loop = Loop(hf_router_server.create_app())
    with loop.server:
        yield loop


@pytest.fixture(scope="module")
def _tgi_loop() -> Iterator[Loop]:
    loop = Loop(tgi_server.create_app())
    with loop.server:
        yield loop


@pytest.fixture
def router(_router_loop: Loop) -> Loop:
    _router_loop.reset()
    return _router_loop


@pytest.fixture
def tgi(_tgi_loop: Loop) -> Loop:
    _tgi_loop.reset()
    return _tgi_loop


def router_settings(loop: Loop, **extra: Any) -> dict[str, Any]:
    return {"base_url": loop.server.url + "/v1", "api_key": KEY, "api": "router", **extra}


def make(cls: Any, settings: dict[str, Any], name: str = "huggingface", **client: Any) -> Any:
    client.setdefault("retry", RetryPolicy.none())
    return cls(providers={name: settings}, env={}, **client)


def tgi_settings(loop: Loop, **extra: Any) -> dict[str, Any]:
    return {"kind": "huggingface", "base_url": loop.server.url, **extra}


# --------------------------------------------------------------------------- router


def test_router_sends_the_model_suffix_unchanged_and_normalises_eos_token(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        r = client.chat(f"huggingface:{LLAMA}:cerebras", QUESTION)
    assert r.text == ANSWER
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "eos_token")
    assert router.state.models == [f"{LLAMA}:cerebras"]
    assert (r.provider, r.model, r.target) == ("huggingface", f"{LLAMA}:cerebras", r.target)
    assert r.target == f"huggingface:{LLAMA}:cerebras"
    assert r.id == "chatcmpl-1"
    body = router.state.requests[0]
    assert r.usage.source == "provider"
    assert r.usage.prompt_tokens == hf_router_server.prompt_tokens(body)
    assert r.usage.completion_tokens == 7
    assert router.state.headers[0]["authorization"] == f"Bearer {KEY}"
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
    assert "stream" not in body


def test_hf_alias_and_policy_suffix_reach_the_router(router: Loop) -> None:
    with make(Client, router_settings(router), name="hf") as client:
        r = client.chat(f"hf:{LLAMA}:fastest", QUESTION)
    assert r.provider == "huggingface"
    assert router.state.models == [f"{LLAMA}:fastest"]


def test_bill_to_is_sent_as_x_hf_bill_to(router: Loop) -> None:
    with make(Client, router_settings(router, bill_to="acme-research")) as client:
        client.chat(f"huggingface:{LLAMA}", QUESTION)
    with make(Client, router_settings(router)) as client:
        client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert router.state.bill_to == ["acme-research", None]


@pytest.mark.parametrize(
    ("options", "raw", "reason", "text"),
    [
        ({}, "eos_token", "stop", ANSWER),
        ({"stop": ["\n\n"]}, "stop_sequence", "stop", ANSWER),
        ({"max_tokens": 3}, "length", "length", "The capital of"),
    ],
)
def test_router_finish_reasons_are_normalised(
    router: Loop, options: dict[str, Any], raw: str, reason: str, text: str
) -> None:
    with make(Client, router_settings(router)) as client:
        r = client.chat(f"huggingface:{LLAMA}", QUESTION, **options)
        events = list(client.stream(f"huggingface:{LLAMA}", QUESTION, **options))
    assert (r.finish_reason, r.raw_finish_reason, r.text) == (reason, raw, text)
    final = events[-1]
    assert (final.finish_reason, final.raw_finish_reason) == (reason, raw)
    assert "".join(e.delta for e in events[:-1]) == text


@pytest.mark.parametrize(
    ("raw", "calls", "expected"),
    [
        ("endoftext", False, "stop"),
        ("eos_token", True, "tool_calls"),
        ("tool_calls", True, "tool_calls"),
        ("content_filter", False, "content_filter"),
        ("length", True, "length"),
        ("something-new", False, "stop"),
        (None, False, "stop"),
    ],
)
def test_normalise_finish_reason(raw: str | None, calls: bool, expected: str) -> None:
    assert normalise_finish_reason(raw, has_tool_calls=calls) == expected


def test_router_stream_asks_for_usage_and_reports_it(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        events = list(client.stream(f"huggingface:{LLAMA}:together", QUESTION, max_tokens=64))
    body = router.state.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64
    deltas = [e for e in events if e.type == "delta"]
    assert len(deltas) == 7 and all(e.delta for e in deltas)
    final = events[-1]
    assert final.type == "final" and final.response is not None
    assert final.response.text == ANSWER
    assert final.usage is not None and final.usage.source == "provider"
    assert final.usage.completion_tokens == 7
    assert final.usage.prompt_tokens == hf_router_server.prompt_tokens(body)
    assert final.id == "chatcmpl-1" and final.model == f"{LLAMA}:together"


def test_router_tools_in_chat_and_stream(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        r = client.chat(
            f"huggingface:{LLAMA}:cerebras",
            "Weather in Paris?",
            tools=[WEATHER_TOOL],
            tool_choice="get_weather",
        )
        events = list(client.stream(f"huggingface:{LLAMA}", "Weather?", tools=[WEATHER_TOOL]))
    assert r.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in r.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    body = router.state.requests[0]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    streamed = events[-1].response
    assert streamed is not None and streamed.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in streamed.tool_calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}')
    ]


def test_router_structured_output_uses_openai_json_schema(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        r = client.chat(f"huggingface:{LLAMA}", QUESTION, response_format=Answer)
        j = client.chat(f"huggingface:{LLAMA}", QUESTION, response_format="json")
    assert r.parsed == Answer(answer="Paris")
    fmt = router.state.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["schema"]["properties"]["answer"]["type"] == "string"
    assert router.state.requests[1]["response_format"] == {"type": "json_object"}
    assert json.loads(j.text) == {"answer": "Paris"}


def test_tool_conversation_is_sent_in_openai_shape(router: Loop) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'},
    ]
    with make(Client, router_settings(router)) as client:
        client.chat(f"huggingface:{LLAMA}", messages, tools=[WEATHER_TOOL])
    sent = router.state.requests[0]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "content": '{"temp_c": 18}', "tool_call_id": "c1"}


def test_router_capabilities_are_data(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        provider = client.provider("huggingface")
        assert isinstance(provider, HuggingFaceProvider) and provider.api == "router"
        caps = provider.capabilities(f"{LLAMA}:novita")
        assert caps.tools and caps.json_schema and caps.stream_usage and caps.needs_key
        assert caps.context_window == 16384
        assert provider.capabilities(f"{LLAMA}:fastest").context_window is None
        with pytest.raises(UnsupportedFeatureError, match="logprobs"):
            client.chat(f"huggingface:{LLAMA}", QUESTION, logprobs=True)
    assert router.server.total_hits() == 0


def test_missing_hf_token_names_the_variable_and_sends_nothing(router: Loop) -> None:
    settings = {"base_url": router.server.url + "/v1", "api": "router"}
    with make(Client, settings) as client:
        assert not client.provider("huggingface").is_configured()
        with pytest.raises(MissingAPIKeyError) as caught:
            client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert "HF_TOKEN" in str(caught.value)
    with Client(env={}) as client, pytest.raises(MissingAPIKeyError, match="HF_TOKEN"):
        client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert router.server.total_hits() == 0


async def test_missing_hf_token_async() -> None:
    async with AsyncClient(env={}) as client:
        with pytest.raises(MissingAPIKeyError, match="HF_TOKEN"):
            await client.chat(f"huggingface:{LLAMA}", QUESTION)


@pytest.mark.parametrize(
    ("env", "sent"),
    [
        ({"HUGGING_FACE_HUB_TOKEN": "hf_legacyname12345"}, "hf_legacyname12345"),
        ({"HF_TOKEN": KEY, "HUGGING_FACE_HUB_TOKEN": "hf_legacyname12345"}, KEY),
    ],
)
def test_keys_and_base_url_come_from_the_environment(
    router: Loop, env: dict[str, str], sent: str
) -> None:
    env = {**env, "HF_BASE_URL": router.server.url + "/v1"}
    with Client(providers={"huggingface": {"api": "router"}}, env=env) as client:
        client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert router.state.headers[0]["authorization"] == f"Bearer {sent}"


def test_hf_base_url_elsewhere_than_the_router_means_an_endpoint(tgi: Loop) -> None:
    env = {"HF_BASE_URL": tgi.server.url + "/v1/", "HF_TOKEN": KEY}
    with Client(env=env, retry=RetryPolicy.none()) as client:
        r = client.chat("huggingface:tgi", QUESTION)
        provider = client.provider("huggingface")
        assert provider.api == "chat" and provider.is_configured()
        assert not provider.capabilities("tgi").needs_key
    assert r.text == ANSWER
    assert tgi.server.total_hits("/v1/chat/completions") == 1
    assert tgi.state.headers[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("body", "text"),
    [("<html><body>maintenance</body></html>", "not JSON"), ({"choices": []}, "expected shape")],
)
def test_a_200_answer_of_the_wrong_shape_is_an_invalid_response(
    router: Loop, body: Any, text: str
) -> None:
    router.state.failures.append((200, body, {}))
    with make(Client, router_settings(router)) as client, pytest.raises(InvalidResponseError) as e:
        client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert text in e.value.message and e.value.retryable


def test_a_key_the_server_echoes_never_reaches_the_error(router: Loop) -> None:
    with make(Client, router_settings(router)) as client, pytest.raises(InvalidRequestError) as e:
        client.chat(f"huggingface:{LLAMA}", "[[echo-key]] hi")
    assert KEY not in str(e.value) and KEY not in e.value.message


async def test_router_async_chat_and_stream(router: Loop) -> None:
    async with make(AsyncClient, router_settings(router, bill_to="acme")) as client:
        r = await client.chat(f"huggingface:{LLAMA}:nebius", QUESTION)
        stream = client.stream(f"huggingface:{LLAMA}:nebius", QUESTION, tools=[WEATHER_TOOL])
        text = await stream.text()
    assert r.text == ANSWER and r.finish_reason == "stop"
    assert text == "" and stream.response is not None
    assert stream.response.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    assert router.state.bill_to == ["acme", "acme"]
    assert router.state.models == [f"{LLAMA}:nebius"] * 2


# --------------------------------------------------------------------------- TGI chat route


def test_tgi_chat_route_with_grammar_and_no_key(tgi: Loop) -> None:
    with make(Client, tgi_settings(tgi), name="tgi") as client:
        r = client.chat("tgi:tgi", QUESTION)
        j = client.chat("tgi:tgi", QUESTION, response_format=Answer)
        assert client.provider("tgi").api == "chat"
    assert (r.text, r.finish_reason, r.raw_finish_reason) == (ANSWER, "stop", "eos_token")
    assert r.usage.completion_tokens == 8 and r.usage.source == "provider"
    assert r.id is None and r.model == "tgi"
    body = tgi.state.requests[0]
    assert body["model"] == "tgi"
    assert "authorization" not in tgi.state.headers[0]
    assert tgi.state.requests[1]["response_format"] == {
        "type": "json",
        "value": Answer.model_json_schema(),
    }
    assert j.parsed == Answer(answer="Paris")
    assert tgi.server.total_hits("/generate") == 0


def test_tgi_tool_calls_with_object_arguments_and_object_deltas(tgi: Loop) -> None:
    with make(Client, tgi_settings(tgi, api="chat"), name="tgi") as client:
        r = client.chat("tgi:tgi", "Weather?", tools=[WEATHER_TOOL])
        events = list(client.stream("tgi:tgi", "Weather?", tools=[WEATHER_TOOL]))
    assert r.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("0", "get_weather", '{"city": "Paris"}')
    ]
    final = events[-1].response
    assert final is not None and final.finish_reason == "tool_calls"
    assert [(c.id, c.parsed_arguments()) for c in final.tool_calls] == [
        ("call_0", {"city": "Paris"})
    ]
    assert final.usage.source == "provider"


def test_a_token_protected_tgi_server_says_how_to_send_a_key(tgi: Loop) -> None:
    tgi.state.token = "s3cret-tgi-key"
    with make(Client, tgi_settings(tgi), name="tgi") as client:
        with pytest.raises(AuthenticationError, match="HF_TOKEN") as caught:
            client.chat("tgi:tgi", QUESTION)
        assert caught.value.status_code == 401
    settings = tgi_settings(tgi, api_key="s3cret-tgi-key")
    with make(Client, settings, name="tgi") as client:
        assert client.chat("tgi:tgi", QUESTION).text == ANSWER
    assert tgi.state.headers[-1]["authorization"] == "Bearer s3cret-tgi-key"


# --------------------------------------------------------------------------- TGI /generate


def test_auto_detects_a_generate_only_server_once(tgi: Loop) -> None:
    tgi.state.chat_route = False
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    with make(Client, tgi_settings(tgi), name="tgi") as client:
        first = client.chat("tgi:tgi", messages)
        second = client.chat("tgi:tgi", QUESTION)
        assert client.provider("tgi").api == "generate"
    assert tgi.server.total_hits("/v1/chat/completions") == 1
    assert tgi.server.total_hits("/generate") == 2
    assert first.text == second.text == ANSWER
    assert (first.finish_reason, first.raw_finish_reason) == ("stop", "eos_token")
    body = tgi.state.requests[1]
    assert body["inputs"] == f"System: Be brief.\n\nUser: {QUESTION}\n\nAssistant:"
    assert body["parameters"]["details"] is True
    assert first.usage.prompt_tokens == tgi_server.words(body["inputs"])
    assert first.usage.completion_tokens == 8 and first.usage.source == "provider"


async def test_auto_detection_in_an_async_stream(tgi: Loop) -> None:
    tgi.state.chat_route = False
    async with make(AsyncClient, tgi_settings(tgi), name="tgi") as client:
        events = [e async for e in client.stream("tgi:tgi", QUESTION, max_tokens=50)]
        again = await client.chat("tgi:tgi", QUESTION)
    assert tgi.server.total_hits("/v1/chat/completions") == 1
    assert tgi.server.total_hits("/generate_stream") == 1
    text = "".join(e.delta for e in events if e.type == "delta")
    assert text == ANSWER and "</s>" not in text
    final = events[-1]
    assert final.usage is not None and final.usage.completion_tokens == 8
    body = tgi.state.requests[1]
    assert final.usage.prompt_tokens == tgi_server.words(body["inputs"])
    assert body["parameters"]["max_new_tokens"] == 50
    assert again.text == ANSWER


def test_tools_on_a_generate_only_server_are_refused(tgi: Loop) -> None:
    tgi.state.chat_route = False
    with make(Client, tgi_settings(tgi), name="tgi") as client:
        with pytest.raises(UnsupportedFeatureError, match="tools"):
            client.chat("tgi:tgi", "Weather?", tools=[WEATHER_TOOL])
        client.chat("tgi:tgi", QUESTION)
        with pytest.raises(UnsupportedFeatureError, match="tools"):
            client.chat("tgi:tgi", "Weather?", tools=[WEATHER_TOOL])
    assert tgi.server.total_hits("/v1/chat/completions") == 2
    assert tgi.server.total_hits("/generate") == 1


def test_a_base_url_with_neither_route_says_so(tgi: Loop) -> None:
    settings = {"kind": "huggingface", "base_url": tgi.server.url + "/missing"}
    with make(Client, settings, name="tgi") as client, pytest.raises(NotFoundError) as caught:
        client.chat("tgi:tgi", QUESTION)
    assert "neither" in caught.value.message and caught.value.status_code == 404


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"temperature": 0.7, "top_p": 0.9, "stop": ["\n\n"], "seed": 7, "max_tokens": 20},
            {
                "temperature": 0.7,
                "do_sample": True,
                "top_p": 0.9,
                "stop": ["\n\n"],
                "seed": 7,
                "max_new_tokens": 20,
            },
        ),
        ({"temperature": 0, "top_p": 1.0}, {"do_sample": False, "max_new_tokens": 512}),
        (
            {"extra_body": {"top_k": 5, "repetition_penalty": 1.1}},
            {"top_k": 5, "repetition_penalty": 1.1, "max_new_tokens": 512},
        ),
    ],
)
def test_generate_parameters_are_mapped(
    tgi: Loop, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    with make(Client, tgi_settings(tgi, api="generate"), name="tgi") as client:
        client.chat("tgi:tgi", QUESTION, **options)
    params = tgi.state.requests[0]["parameters"]
    assert params == {"details": True, "return_full_text": False, **expected}


def test_generate_json_grammar_and_logprobs(tgi: Loop) -> None:
    with make(Client, tgi_settings(tgi, api="generate"), name="tgi") as client:
        r = client.chat("tgi:tgi", QUESTION, response_format=Answer)
        lp = client.chat("tgi:tgi", QUESTION, top_logprobs=2)
        events = list(client.stream("tgi:tgi", QUESTION, logprobs=True))
    assert tgi.state.requests[0]["parameters"]["grammar"] == {
        "type": "json",
        "value": Answer.model_json_schema(),
    }
    assert r.parsed == Answer(answer="Paris")
    assert lp.logprobs is not None and [t.token for t in lp.logprobs] == [
        "The",
        " capital",
        " of",
        " France",
        " is",
        " Paris",
        ".",
    ]
    assert tgi.state.requests[1]["parameters"]["top_n_tokens"] == 2
    assert [len(t.top_logprobs) for t in lp.logprobs] == [2] * 7
    assert lp.logprobs[0].logprob == pytest.approx(-0.1)
    streamed = events[-1].response
    assert streamed is not None and streamed.logprobs is not None
    assert len(streamed.logprobs) == 7


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("chatml", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        ("raw", "Hi"),
        (lambda messages: f"<<{messages[-1].content}>>", "<<Hi>>"),
    ],
)
def test_prompt_formats(tgi: Loop, fmt: Any, expected: str) -> None:
    with make(Client, tgi_settings(tgi, api="generate", prompt_format=fmt), name="tgi") as c:
        c.chat("tgi:tgi", "Hi")
    assert tgi.state.requests[0]["inputs"] == expected
    assert build_prompt([UserMessage(content="Hi")], fmt) == expected


def test_generate_stream_ending_with_done(tgi: Loop) -> None:
    with make(Client, tgi_settings(tgi, api="generate"), name="tgi") as client:
        final = list(client.stream("tgi:tgi", "[[done]] " + QUESTION, stop=["!"]))[-1]
    assert final.response is not None and final.response.text == ANSWER
    assert (final.finish_reason, final.raw_finish_reason) == ("stop", "stop_sequence")


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]}, InvalidRequestError, "up to 4 stop sequences"),
        ({"max_tokens": 5000}, ContextLengthError, "must be <= 4096"),
    ],
)
def test_tgi_validation_errors(
    tgi: Loop, options: dict[str, Any], error: type[LLMOSError], text: str
) -> None:
    with make(Client, tgi_settings(tgi, api="generate"), name="tgi") as client:
        with pytest.raises(error, match=text) as caught:
            client.chat("tgi:tgi", QUESTION, **options)
    assert caught.value.status_code == 422 and caught.value.provider_code == "validation"


# --------------------------------------------------------------------------- cold models


def test_loading_model_is_waited_out_by_the_retry_layer(router: Loop, tgi: Loop) -> None:
    router.state.failures.append(tgi_server.loading(20.0))
    clock = FakeClock()
    retry = RetryPolicy(max_attempts=3)
    with make(Client, router_settings(router), clock=clock, retry=retry) as client:
        r = client.chat(f"huggingface:{LLAMA}", QUESTION)
    assert r.text == ANSWER
    assert router.server.total_hits("/v1/chat/completions") == 2
    assert clock.slept == [20.0]
    assert [(a.ok, a.error_type) for a in r.attempts] == [
        (False, "ModelLoadingError"),
        (True, None),
    ]
    assert r.attempts[1].waited_s == 20.0


async def test_loading_model_is_waited_out_in_an_async_generate_stream(tgi: Loop) -> None:
    tgi.state.failures.append(tgi_server.loading(5.0))
    clock = FakeClock()
    retry = RetryPolicy(max_attempts=2)
    settings = tgi_settings(tgi, api="generate")
    async with make(AsyncClient, settings, name="tgi", clock=clock, retry=retry) as client:
        text = await client.stream("tgi:tgi", QUESTION).text()
    assert text == ANSWER
    assert tgi.server.total_hits("/generate_stream") == 2
    assert clock.slept == [5.0]


@pytest.mark.parametrize(
    "retry",
    [RetryPolicy(max_attempts=3, deadline=10.0), RetryPolicy(max_attempts=3, max_retry_after=5)],
    ids=["past-the-deadline", "over-max-retry-after"],
)
def test_loading_longer_than_allowed_says_how_long(tgi: Loop, retry: RetryPolicy) -> None:
    tgi.state.failures.append(tgi_server.loading(20.0))
    clock = FakeClock()
    settings = tgi_settings(tgi, api="generate")
    with make(Client, settings, name="tgi", clock=clock, retry=retry) as client:
        with pytest.raises(ModelLoadingError) as caught:
            client.chat("tgi:tgi", QUESTION)
    error = caught.value
    assert "about 20 s" in error.message and "currently loading" in error.message
    assert (error.status_code, error.retry_after, error.estimated_time) == (503, 20.0, 20.0)
    assert isinstance(error, ServerError) and error.retryable
    assert tgi.server.total_hits() == 1 and clock.slept == []


# --------------------------------------------------------------------------- error shapes


def tgi_error(message: str, kind: str) -> dict[str, str]:
    return {"error": message, "error_type": kind}


def openai_error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


ERROR_CASES = {
    "tgi-422-validation": (
        422, tgi_error("Input validation error: `top_n_tokens` must be >= 1", "validation"), {},
        InvalidRequestError, "top_n_tokens", "validation",
    ),
    "tgi-424-generation": (
        424, tgi_error("Request failed during generation: boom", "generation"), {},
        ServerError, "failed during generation", "generation",
    ),
    "tgi-429-overloaded": (
        429, tgi_error("Model is overloaded", "overloaded"), {},
        RateLimitError, "overloaded", "overloaded",
    ),
    "tgi-500-incomplete": (
        500, tgi_error("Incomplete generation", "incomplete_generation"), {},
        ServerError, "Incomplete generation", "incomplete_generation",
    ),
    "error-list": (
        400, {"error": ["inputs must be a string", "max_new_tokens too large"]}, {},
        InvalidRequestError, "inputs must be a string; max_new_tokens too large", None,
    ),
    "error-description": (
        401, {"error": "invalid_token", "error_description": "The token expired"}, {},
        AuthenticationError, "invalid_token: The token expired", None,
    ),
    "errors-list": (
        400, {"errors": [{"message": "parameters.top_k must be positive"}]}, {},
        InvalidRequestError, "top_k must be positive", None,
    ),
    "x-error-message": (
        403, "", {"X-Error-Message": "Access to this model is restricted"},
        PermissionDeniedError, "Access to this model is restricted", None,
    ),
    "openai-quota": (
        429, openai_error("You exceeded your current quota", "insufficient_quota"), {},
        QuotaExceededError, "quota", "insufficient_quota",
    ),
    "openai-model-not-found": (
        404, openai_error("The model `x/y` does not exist", "model_not_found"), {},
        NotFoundError, "does not exist", "model_not_found",
    ),
    "html-502": (
        502, "<html><title>502 Bad Gateway</title></html>", {},
        ServerError, "HTML page", None,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "message", "code"),
    list(ERROR_CASES.values()),
    ids=list(ERROR_CASES),
)
def test_error_bodies_map_to_llmos_errors(
    router: Loop,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[LLMOSError],
    message: str,
    code: str | None,
) -> None:
    router.state.failures.append((status, body, {**headers, "x-request-id": "req-err-7"}))
    with make(Client, router_settings(router)) as client, pytest.raises(error) as caught:
        client.chat(f"huggingface:{LLAMA}:together", QUESTION)
    raised = caught.value
    assert type(raised) is error
    assert message in raised.message
    assert (raised.status_code, raised.request_id, raised.provider_code) == (
        status,
        "req-err-7",
        code,
    )
    assert (raised.provider, raised.model) == ("huggingface", f"{LLAMA}:together")
    assert router.server.total_hits() == 1
    if status == 424:
        assert not raised.retryable


# --------------------------------------------------------------------------- in-stream errors


def _collect(events: Any) -> tuple[list[str], BaseException | None]:
    deltas: list[str] = []
    try:
        for event in events:
            deltas.append(event.delta)
    except LLMOSError as exc:
        return deltas, exc
    return deltas, None


@pytest.mark.parametrize("api", ["generate", "chat"])
def test_tgi_error_inside_a_stream_is_raised(tgi: Loop, api: str) -> None:
    with make(Client, tgi_settings(tgi, api=api), name="tgi") as client:
        deltas, error = _collect(client.stream("tgi:tgi", "[[stream-error]] hi"))
    assert deltas == ["The", " capital"]
    assert isinstance(error, ServerError) and not error.retryable
    assert error.provider_code == "generation" and error.status_code is None
    assert "CUDA out of memory" in error.message


def test_router_openai_shaped_error_inside_a_stream(router: Loop) -> None:
    with make(Client, router_settings(router)) as client:
        deltas, error = _collect(client.stream(f"huggingface:{LLAMA}", "[[stream-error]] hi"))
    assert deltas == ["The", " capital"]
    assert isinstance(error, ServerError) and "upstream provider failed" in error.message


def test_overloaded_before_the_first_token_is_retried(tgi: Loop) -> None:
    clock = FakeClock()
    settings = tgi_settings(tgi, api="generate")
    retry = RetryPolicy(max_attempts=2)
    with make(Client, settings, name="tgi", clock=clock, retry=retry) as client:
        deltas, error = _collect(client.stream("tgi:tgi", "[[overloaded-stream]] hi"))
    assert deltas == [] and isinstance(error, RateLimitError)
    assert tgi.server.total_hits("/generate_stream") == 2 and len(clock.slept) == 1


@pytest.mark.parametrize("target", ["router", "generate"])
async def test_a_cut_stream_is_an_invalid_response(router: Loop, tgi: Loop, target: str) -> None:
    if target == "router":
        client, model = make(AsyncClient, router_settings(router)), f"huggingface:{LLAMA}"
    else:
        client, model = make(AsyncClient, tgi_settings(tgi, api="generate"), name="tgi"), "tgi:t"
    async with client:
        deltas: list[str] = []
        with pytest.raises(InvalidResponseError, match="ended before"):
            async for event in client.stream(model, "[[cut]] hi"):
                deltas.append(event.delta)
    assert deltas == ["The", " capital"]


async def test_async_in_stream_error_and_generate_chat(tgi: Loop) -> None:
    async with make(AsyncClient, tgi_settings(tgi, api="generate"), name="tgi") as client:
        r = await client.chat("tgi:tgi", QUESTION, max_tokens=2)
        with pytest.raises(ServerError, match="CUDA"):
            await client.stream("tgi:tgi", "[[stream-error]]").text()
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("The capital", "length", "length")
    assert r.usage.completion_tokens == 2
