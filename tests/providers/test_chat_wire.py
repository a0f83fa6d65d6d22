"""The shared chat-completions dialect: request bodies, answers and stream chunks as plain JSON.

The provider suites exercise this code over HTTP; these tests pin the dialect differences and
the lenient reading of every variant the servers send, one shape at a time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmos.errors import (
    ContextLengthError,
    InvalidRequestError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from llmos.providers._chat_wire import (
    FINISH_REASONS,
    OPENAI,
    Dialect,
    StreamState,
    decode_json,
    encode_body,
    logprobs_of,
    normalise_finish_reason,
    openai_response_format,
    parse_completion,
    request_body,
    response_events,
    usage_of,
)
from llmos.providers._errors import payload_status
from llmos.providers.ai21 import DIALECT as AI21
from llmos.providers.huggingface import DIALECT as HF
from llmos.streaming import StreamAssembler
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    NamedToolChoice,
    ResponseFormat,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

WEATHER = Tool(
    name="get_weather", description="Weather", parameters={"type": "object"}, strict=True
)
CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')


def chat(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", [UserMessage(content="Hi")])
    return ChatRequest(model="m", **fields)


def completion(message: dict[str, Any], finish: Any = "stop", **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return {"id": "c-1", "model": "served", "choices": [choice], **extra}


def parse(data: Any) -> Any:
    return parse_completion(data, provider="p", model="m", headers={"x-request-id": "req-7"})


def chunk(delta: dict[str, Any] | None = None, finish: Any = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c-1", "model": "served", "choices": choices, **extra}


# --------------------------------------------------------------------------- finish reasons


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(raw, "stop") for raw in ("stop", "eos_token", "stop_sequence", "endoftext", "STOP")],
        *[(raw, "length") for raw in ("length", "max_output_tokens", "max_tokens")],
        *[(raw, "tool_calls") for raw in ("tool_calls", "function_call")],
        ("content_filter", "content_filter"),
        ("something-new", "stop"),
        (None, "stop"),
        (7, "stop"),
    ],
)
def test_one_finish_reason_normaliser_for_every_server(raw: Any, expected: str) -> None:
    assert normalise_finish_reason(raw) == expected


def test_a_stop_that_came_with_tool_calls_is_tool_calls_but_length_stays_length() -> None:
    assert normalise_finish_reason("eos_token", has_tool_calls=True) == "tool_calls"
    assert normalise_finish_reason("stop", has_tool_calls=True) == "tool_calls"
    assert normalise_finish_reason(None, has_tool_calls=True) == "tool_calls"
    assert normalise_finish_reason("length", has_tool_calls=True) == "length"
    assert normalise_finish_reason("content_filter", has_tool_calls=True) == "content_filter"
    assert set(FINISH_REASONS.values()) == {"stop", "length", "tool_calls", "content_filter"}


# --------------------------------------------------------------------------- requests


def test_openai_body_carries_every_parameter_and_extra_body_wins() -> None:
    request = chat(
        messages=[SystemMessage(content="Be brief.", name="ops"), UserMessage(content="Hi")],
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop=["\n"],
        seed=3,
        logprobs=True,
        top_logprobs=2,
        extra_body={"temperature": 0.5, "service_tier": "flex"},
    )
    body = request_body(request, max_tokens_field="max_completion_tokens")
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {"role": "user", "content": "Hi"},
        ],
        "max_completion_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["\n"],
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "service_tier": "flex",
    }


def test_stream_and_stream_options_are_sent_only_with_streams() -> None:
    options = {"include_usage": True}
    assert "stream" not in request_body(chat(), stream_options=options)
    streamed = request_body(chat(), stream=True, stream_options=options)
    assert (streamed["stream"], streamed["stream_options"]) == (True, options)
    assert "stream_options" not in request_body(chat(), stream=True)


def tool_conversation() -> list[Any]:
    return [
        UserMessage(content="Weather?", name="ann"),
        AssistantMessage(content=None, tool_calls=[CALL]),
        ToolMessage(tool_call_id="call_1", content='{"temp_c": 18}', name="get_weather"),
    ]


def test_dialects_differ_in_names_null_content_and_tool_fields() -> None:
    request = chat(
        messages=tool_conversation(),
        tools=[WEATHER],
        tool_choice=NamedToolChoice(name="get_weather"),
    )
    wire_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    tool_result = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'}

    openai = request_body(request, OPENAI)
    assert openai["messages"] == [
        {"role": "user", "content": "Weather?", "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": [wire_call]},
        tool_result,
    ]
    assert openai["tools"][0]["function"]["strict"] is True
    assert openai["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    hf = request_body(request, HF)
    assert hf["messages"][1] == {"role": "assistant", "tool_calls": [wire_call]}
    assert hf["messages"][0]["name"] == "ann"

    ai21 = request_body(request, AI21)
    assert ai21["messages"][0] == {"role": "user", "content": "Weather?"}
    assert ai21["messages"][1] == {"role": "assistant", "tool_calls": [wire_call]}
    assert ai21["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object"},
                "description": "Weather",
            },
        }
    ]
    assert "tool_choice" not in ai21


def test_tool_choice_none_without_tool_choice_support_leaves_the_tools_out() -> None:
    request = chat(tools=[WEATHER], tool_choice="none")
    assert "tools" not in request_body(request, Dialect(tool_choice=False))
    assert request_body(request, OPENAI)["tool_choice"] == "none"


def test_an_assistant_message_with_neither_text_nor_calls_sends_empty_text() -> None:
    request = chat(messages=[UserMessage(content="Hi"), AssistantMessage(content=None)])
    for dialect in (OPENAI, HF, AI21):
        assert request_body(request, dialect)["messages"][1] == {
            "role": "assistant",
            "content": "",
        }


def test_response_formats_in_openai_shape() -> None:
    schema = ResponseFormat(type="json_schema", name="a", json_schema={"type": "object"})
    strict = ResponseFormat(type="json_schema", json_schema={"type": "object"}, strict=True)
    text = ResponseFormat(type="text")
    assert openai_response_format(None) is None
    assert openai_response_format(text) is None
    assert openai_response_format(text, send_text=True) == {"type": "text"}
    assert openai_response_format(ResponseFormat(type="json_object")) == {"type": "json_object"}
    assert openai_response_format(schema) == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": {"type": "object"}},
    }
    assert openai_response_format(strict) == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True},
    }


def test_bodies_are_compact_utf8_json_and_non_json_extra_body_is_refused() -> None:
    raw = encode_body(request_body(chat(messages=[UserMessage(content="Grüße")])), model="m")
    assert raw == '{"model":"m","messages":[{"role":"user","content":"Grüße"}]}'.encode()
    with pytest.raises(InvalidRequestError) as info:
        encode_body(request_body(chat(extra_body={"when": object()})), model="m")
    assert info.value.field == "extra_body"


# --------------------------------------------------------------------------- answers


def test_a_full_openai_answer() -> None:
    usage = {
        "prompt_tokens": 24,
        "completion_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    logprobs = {"content": [{"token": "Hi", "logprob": -0.5, "top_logprobs": []}]}
    data = completion({"role": "assistant", "content": "Hi"}, usage=usage)
    data["choices"][0]["logprobs"] = logprobs
    r = parse(data)
    assert (r.id, r.provider, r.model, r.target) == ("c-1", "p", "served", "p:m")
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("Hi", "stop", "stop")
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens) == (24, 9, 8)
    assert (u.cache_write_tokens, u.reasoning_tokens, u.source) == (4, 2, "provider")
    assert r.logprobs is not None and (r.logprobs[0].token, r.logprobs[0].logprob) == ("Hi", -0.5)


def test_a_sparse_answer_falls_back_to_the_requested_model_and_a_total_only_usage() -> None:
    data = {
        "choices": [{"message": {"content": "Hi"}}],
        "usage": {"prompt_tokens": 5, "total_tokens": 7},
    }
    r = parse(data)
    assert (r.id, r.model, r.finish_reason, r.raw_finish_reason) == (None, "m", "stop", None)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 2)
    assert parse(completion({"content": "Hi"}, usage=None)).usage.source == "missing"


def test_tool_calls_with_object_arguments_and_missing_ids() -> None:
    message = {
        "content": None,
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "0", "function": {"name": "get_time"}},
        ],
    }
    r = parse(completion(message, finish="eos_token"))
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_0", "get_weather", '{"city": "Paris"}'),
        ("0", "get_time", "{}"),
    ]
    assert (r.text, r.finish_reason) == ("", "tool_calls")


def test_legacy_function_calls_refusals_and_text_parts() -> None:
    legacy = parse(completion({"function_call": {"name": "f", "arguments": "{}"}}, "function_call"))
    assert [c.name for c in legacy.tool_calls] == ["f"] and legacy.finish_reason == "tool_calls"
    refused = parse(completion({"content": None, "refusal": "I cannot help."}))
    assert (refused.text, refused.finish_reason) == ("I cannot help.", "content_filter")
    parts = parse(completion({"content": [{"type": "text", "text": "Hi "}, {"text": "there"}]}))
    assert parts.text == "Hi there"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (["a", "list"], "JSON list"),
        ({"id": "x", "choices": []}, "no choices"),
        ({"choices": [{"index": 0}]}, "has no message"),
        (completion({"tool_calls": [{"function": {"arguments": "{}"}}]}), "no function name"),
        (completion({"content": {"text": "Hi"}}), "not text"),
        ({"choices": ["not an object"]}, "expected shape"),
    ],
    ids=["list", "no-choices", "no-message", "nameless-call", "dict-content", "odd-choice"],
)
def test_unreadable_answers_are_invalid_responses_naming_the_call(data: Any, text: str) -> None:
    with pytest.raises(InvalidResponseError, match=text) as info:
        parse(data)
    assert (info.value.provider, info.value.model, info.value.request_id) == ("p", "m", "req-7")


def test_text_that_is_not_json_is_shown_in_the_error() -> None:
    with pytest.raises(InvalidResponseError, match="not JSON instead of a chat completion"):
        decode_json(b"<html>portal</html>", provider="p", model="m")


def test_an_error_object_in_a_200_answer_raises_its_mapped_error() -> None:
    with pytest.raises(ServerError) as stated:
        parse({"detail": "Model overloaded", "status": 503})
    assert (stated.value.status_code, stated.value.request_id) == (503, "req-7")
    body = {"error": {"message": "maximum context length is 8k", "code": "context_length_exceeded"}}
    with pytest.raises(ContextLengthError) as inferred:
        parse(body)
    assert inferred.value.status_code is None  # the HTTP answer was a 200


def openai_error(**fields: Any) -> dict[str, Any]:
    return {"error": {"message": "it failed", **fields}}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"detail": "overloaded", "status": 503}, (503, True)),
        (openai_error(status_code=429), (429, True)),
        (openai_error(code=502), (502, False)),
        ({"error": "boom", "error_type": "generation"}, (424, False)),
        (openai_error(type="requests", code="rate_limit_exceeded"), (429, False)),
        (openai_error(type="invalid_request_error", code="invalid_api_key"), (400, False)),
        (openai_error(type="server_error"), (500, False)),
    ],
)
def test_error_objects_say_their_status_or_imply_one(payload: Any, status: Any) -> None:
    assert payload_status(payload) == status


def test_usage_counts_are_lenient() -> None:
    usage = usage_of(
        {"prompt_tokens": "12", "completion_tokens": 3.0, "prompt_tokens_details": None}
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (12, 3, 0)
    assert usage_of({"prompt_tokens": True, "completion_tokens": -4}).completion_tokens == 0
    assert usage_of({}).source == usage_of(None).source == "missing"


def test_malformed_logprob_entries_are_skipped() -> None:
    tops = [{"token": "b"}, {"token": "c", "logprob": -2}]
    entries = [{"token": "a", "logprob": -1, "top_logprobs": tops}, {"token": "x"}, "not an object"]
    found = logprobs_of({"content": entries})
    assert found is not None and [(t.token, t.logprob) for t in found] == [("a", -1.0)]
    assert [t.token for t in found[0].top_logprobs] == ["c"]
    assert logprobs_of({"content": {"token": "x", "logprob": 0}}) is not None  # one entry
    assert logprobs_of({"content": []}) is None and logprobs_of(None) is None


# --------------------------------------------------------------------------- streams


def assemble(state: StreamState, chunks: list[Any], *, done: bool = True) -> Any:
    assembler = StreamAssembler(provider="p", model="m", target="p:m", started=0.0)
    events = [event for c in chunks for event in state.feed(c)]
    for event in events:
        assembler.add(event)
    return events, assembler.finish(state.final(done=done))


def test_a_text_stream_with_logprobs_and_a_usage_chunk() -> None:
    logprob = {"content": [{"token": "Hi", "logprob": -0.1, "top_logprobs": []}]}
    first = chunk({"content": "Hi"})
    first["choices"][0]["logprobs"] = logprob
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        first,
        chunk({"content": " there"}),
        chunk({}, "stop"),
        chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 2}),
    ]
    state = StreamState("p", "m")
    events, response = assemble(state, chunks)
    assert [e.delta for e in events] == ["Hi", " there"]
    assert events[0].logprobs is not None and events[0].logprobs[0].token == "Hi"
    assert (response.text, response.finish_reason, response.id, response.model) == (
        "Hi there",
        "stop",
        "c-1",
        "served",
    )
    assert (response.usage.completion_tokens, response.usage.source) == (2, "provider")
    assert state.text_chunks == 2


def test_tool_call_fragments_keyed_by_index_also_as_one_object_and_json_arguments() -> None:
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}),
        chunk({"tool_calls": {"index": 0, "function": {"arguments": "1}"}}}),  # TGI: one object
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": {"y": 2}}}]}),
        chunk({"tool_calls": [{"index": 1}]}),  # says nothing: no event
        chunk({}, "eos_token"),
    ]
    events, response = assemble(StreamState("p", "m"), chunks)
    assert len(events) == 5 and all(e.type == "tool_call" for e in events)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", '{"y": 2}'),
    ]
    assert response.finish_reason == "tool_calls" and response.raw_finish_reason == "eos_token"


def test_a_streamed_refusal_ends_as_content_filter() -> None:
    chunks = [chunk({"content": None, "refusal": "No."}), chunk({}, "stop")]
    events, response = assemble(StreamState("p", "m"), chunks)
    assert [e.delta for e in events] == ["No."]
    assert response.finish_reason == "content_filter"


def test_a_stream_cut_before_finishing_is_an_error_but_done_without_a_reason_is_not() -> None:
    cut = StreamState("p", "m", {"x-request-id": "req-3"})
    cut.feed(chunk({"content": "Hi"}))
    with pytest.raises(InvalidResponseError, match="cut short") as info:
        cut.final(done=False)
    assert info.value.request_id == "req-3"
    done = StreamState("p", "m")
    done.feed(chunk({"content": "Hi"}))
    final = done.final(done=True)
    assert (final.finish_reason, final.raw_finish_reason) == ("stop", None)
    assert final.usage is not None and final.usage.source == "missing"
    assert final.model == "served"


def test_an_error_event_inside_a_stream_raises_its_mapped_error() -> None:
    state = StreamState("p", "m", {"x-request-id": "req-9", "retry-after": "2"})
    event = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    with pytest.raises(RateLimitError) as info:
        state.feed(event)
    error = info.value
    assert error.message.startswith("error inside the stream: Rate limit reached")
    assert (error.status_code, error.request_id, error.retry_after) == (None, "req-9", 2.0)


@pytest.mark.parametrize("event", [["a", "list"], {"choices": [{"delta": {"content": 5}}]}])
def test_unreadable_stream_chunks_are_invalid_responses(event: Any) -> None:
    with pytest.raises(InvalidResponseError) as info:
        StreamState("p", "m").feed(event)
    assert (info.value.provider, info.value.model) == ("p", "m")


def test_other_choices_are_ignored() -> None:
    other = {"choices": [{"index": 1, "delta": {"content": "no"}, "finish_reason": "stop"}]}
    state = StreamState("p", "m")
    assert state.feed(other) == [] and state.raw_finish is None


def test_a_whole_answer_replays_as_events() -> None:
    r = parse(completion({"content": "Hi", "tool_calls": [{"id": "a", "function": {"name": "f"}}]}))
    events = list(response_events(r))
    assert [e.type for e in events] == ["delta", "tool_call", "final"]
    assert events[1].tool_call is not None and events[1].tool_call.name == "f"
    final = events[-1]
    assert (final.finish_reason, final.id, final.model, final.usage) == (
        "tool_calls",
        "c-1",
        "served",
        r.usage,
    )
    assert json.loads(r.tool_calls[0].arguments) == {}
