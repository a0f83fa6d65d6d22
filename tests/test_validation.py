"""Bad input raises InvalidRequestError naming the field, before anything is sent."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from llmos import Client, ConfigurationError, InvalidRequestError
from llmos.messages import build_request, coerce_messages, coerce_response_format
from llmos.types import AssistantMessage, ToolMessage, UserMessage


@pytest.fixture()
def client() -> Client:
    # No provider is ever reached: every case below fails validation first.
    return Client(env={})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": 5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"stop": [""]}, "stop"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": 42}, "response_format"),
        ({"temprature": 0.1}, "temprature"),
    ],
)
def test_bad_parameter_names_the_field(client: Client, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat("local:gemma-3-270m", "hi", **kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_unknown_parameter_suggests_the_right_name(client: Client) -> None:
    with pytest.raises(InvalidRequestError, match="did you mean 'temperature'"):
        client.chat("local:gemma-3-270m", "hi", temprature=0.5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ("", "messages"),
        ("   ", "messages"),
        ({"role": "user", "content": "hi"}, "messages"),
        ([{"role": "bot", "content": "hi"}], "messages[0].role"),
        ([{"content": "hi"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
        ([{"role": "tool", "content": "42"}], "messages[0].tool_call_id"),
        ([{"role": "user", "content": "hi", "contnet": "x"}], "messages[0].contnet"),
        ([{"role": "assistant"}], "messages[0].content"),
        (["hello"], "messages[0]"),
    ],
)
def test_bad_messages_name_the_field(client: Client, messages: object, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat("local:gemma-3-270m", messages)  # type: ignore[arg-type]
    assert info.value.field == field


def test_tool_message_must_answer_an_earlier_tool_call() -> None:
    with pytest.raises(InvalidRequestError) as info:
        coerce_messages(
            [
                {"role": "user", "content": "weather?"},
                {"role": "tool", "tool_call_id": "call_9", "content": "18C"},
            ]
        )
    assert info.value.field == "messages[1].tool_call_id"


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "", ":gpt-4", "openai:", 42])
def test_model_without_provider_is_an_invalid_request(client: Client, model: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.chat(model, "hi")  # type: ignore[arg-type]
    assert info.value.field == "model"


def test_unknown_provider_lists_the_known_ones(client: Client) -> None:
    with pytest.raises(ConfigurationError) as info:
        client.chat("nosuch:model", "hi")
    text = str(info.value)
    assert "nosuch" in text
    for known in ("openai", "ai21", "huggingface", "local", "ollama", "vllm"):
        assert known in text


def test_openai_style_dicts_become_typed_messages() -> None:
    messages = coerce_messages(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "Also polite."},
            {"role": "user", "content": [{"type": "text", "text": "Weather "}, "in Paris?"]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp_c": 18}'},
        ]
    )
    assert [m.role for m in messages] == ["system", "system", "user", "assistant", "tool"]
    assert isinstance(messages[2], UserMessage) and messages[2].content == "Weather in Paris?"
    assert isinstance(messages[3], AssistantMessage)
    assert messages[3].tool_calls[0].name == "get_weather"
    assert messages[3].tool_calls[0].parsed_arguments() == {"city": "Paris"}
    assert isinstance(messages[4], ToolMessage) and messages[4].tool_call_id == "call_abc"


def test_string_prompt_is_one_user_message() -> None:
    request = build_request("m", "Hello")
    assert [(m.role, m.content) for m in request.messages] == [("user", "Hello")]


class Answer(BaseModel):
    answer: str


def test_response_format_accepts_every_documented_form() -> None:
    from_model = coerce_response_format(Answer)
    assert from_model is not None and from_model.type == "json_schema"
    assert from_model.output_type is Answer and from_model.name == "Answer"
    assert coerce_response_format("json").type == "json_object"  # type: ignore[union-attr]
    raw = coerce_response_format({"type": "object", "properties": {"a": {"type": "string"}}})
    assert raw is not None and raw.type == "json_schema" and raw.json_schema is not None
    wrapped = coerce_response_format(
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    )
    assert wrapped is not None and wrapped.name == "x"
    request = build_request("m", "hi", response_format=Answer)
    assert request.response_format is not None and request.response_format.output_type is Answer


def test_tools_in_openai_form_and_named_tool_choice() -> None:
    request = build_request(
        "m",
        "weather?",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert request.tools is not None and request.tools[0].name == "get_weather"
    assert request.tool_choice is not None and request.wants() == {"tools"}
    with pytest.raises(InvalidRequestError) as info:
        build_request(
            "m", "x", tools=[{"type": "function", "function": {"name": "a"}}], tool_choice="b"
        )
    assert info.value.field == "tool_choice"
    with pytest.raises(InvalidRequestError) as info:
        build_request("m", "x", tools=[{"type": "function", "function": {"name": "bad name!"}}])
    assert info.value.field is not None and info.value.field.startswith("tools[0]")


def test_reasoning_models_refuse_sampling_parameters_before_sending() -> None:
    from llmos import UnsupportedFeatureError

    # A key and an unreachable base URL: a request that got past the check would fail to connect.
    client = Client(
        env={},
        providers={"openai": {"api_key": "sk-test-sampling", "base_url": "http://127.0.0.1:9/v1"}},
    )
    for params in ({"temperature": 0}, {"top_p": 0.5}):
        with pytest.raises(UnsupportedFeatureError) as info:
            client.chat("openai:gpt-5.4-mini", "hi", **params)
        assert info.value.feature == "sampling"
        assert "temperature or top_p other than 1" in str(info.value)
    # The same values pass the check on a model that takes them (and then fail to connect).
    from llmos import APIConnectionError, RetryPolicy

    with pytest.raises(APIConnectionError):
        client.chat("openai:gpt-4.1-mini", "hi", temperature=0, retry=RetryPolicy.none())
