"""The local provider on the real embedded Gemma 3 270M model (small max_tokens throughout)."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llmos import (
    APITimeoutError,
    AsyncClient,
    Client,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    UnsupportedFeatureError,
)
from llmos.messages import build_request
from llmos.providers.local import LocalProvider, LocalSettings, logical_cpus, physical_cores
from llmos.retry import Clock, RetryPolicy

llama_cpp = pytest.importorskip("llama_cpp", reason="needs pip install 'llmos[local]'")

QUESTION = "What is the capital of France?"
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
]
#: A Gemma-style chat template, written into a copy of the embedded GGUF for template tests.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def provider_of(client: Client) -> LocalProvider:
    provider = client.provider("local")
    assert isinstance(provider, LocalProvider)
    return provider


def evaluated_tokens(client: Client, model: str = "gemma-3-270m") -> int:
    """How many tokens the loaded llama.cpp context holds (changes whenever it generates)."""
    return int(provider_of(client)._by_name[model].llm.n_tokens)


# --------------------------------------------------------------------------- a templated GGUF

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def write_with_chat_template(src: Path, dst: Path, template: str) -> Path:
    """Copy a GGUF file, adding a ``tokenizer.chat_template`` key (GGUF v3 layout)."""
    data = memoryview(src.read_bytes())
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)

    def after_string(pos: int) -> int:
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]

    def after_value(pos: int, vtype: int) -> int:
        if vtype == 8:
            return after_string(pos)
        if vtype == 9:
            itype, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if itype == 8:
                for _ in range(count):
                    pos = after_string(pos)
                return pos
            return pos + _SCALAR_SIZES[itype] * count
        return pos + _SCALAR_SIZES[vtype]

    pos, alignment = 24, 32
    for _ in range(n_kv):
        key_end = after_string(pos)
        vtype = struct.unpack_from("<I", data, key_end)[0]
        if bytes(data[pos + 8 : key_end]) == b"general.alignment":
            alignment = struct.unpack_from("<I", data, key_end + 4)[0]
        pos = after_value(key_end + 4, vtype)
    kv_end = pos
    for _ in range(n_tensors):
        pos = after_string(pos)
        n_dims = struct.unpack_from("<I", data, pos)[0]
        pos += 4 + 8 * n_dims + 4 + 8
    infos_end = pos
    data_start = -(-infos_end // alignment) * alignment
    key, value = b"tokenizer.chat_template", template.encode()
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(value)) + value
    head = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv + 1)
    head += bytes(data[24:kv_end]) + kv + bytes(data[kv_end:infos_end])
    head += b"\0" * (-len(head) % alignment)
    with dst.open("wb") as out:
        out.write(head)
        out.write(data[data_start:])
    return dst


@pytest.fixture(scope="module")
def templated_model(
    embedded_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The embedded model with a chat template in its metadata, as an instruct GGUF would have."""
    path = write_with_chat_template(
        embedded_model_path, tmp_path_factory.mktemp("templated") / "templated.gguf", TEMPLATE
    )
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def templated_client(templated_model: Path) -> Iterator[Client]:
    with Client(providers={"local": {"seed": 0, "model": str(templated_model)}}) as client:
        yield client


# --------------------------------------------------------------------------- answers


def test_answers_the_capital_of_france(local_client: Client) -> None:
    response = local_client.chat("local:gemma-3-270m", QUESTION)
    assert "Paris" in response.text


def test_plain_local_means_the_embedded_model(local_client: Client) -> None:
    response = local_client.chat("local", QUESTION, temperature=0, max_tokens=16)
    assert response.model == "gemma-3-270m"
    assert "Paris" in response.text


def test_response_has_the_common_shape(local_client: Client) -> None:
    response = local_client.chat("local:gemma-3-270m", QUESTION, temperature=0, max_tokens=16)
    assert response.provider == "local"
    assert response.model == "gemma-3-270m"
    assert response.target == "local:gemma-3-270m"
    assert response.id and response.id.startswith("local-")
    assert response.message.role == "assistant"
    assert response.text == response.text.strip() and response.text
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason in ("eos", "stop")
    assert response.usage.source == "tokenizer"
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16
    assert response.latency.total_s > 0
    assert response.latency.queued_s is not None
    assert response.attempts and response.attempts[-1].ok


def test_max_tokens_cuts_with_length(local_client: Client) -> None:
    response = local_client.chat("local", "Tell me a long story.", temperature=0, max_tokens=3)
    assert response.finish_reason == "length"
    assert response.raw_finish_reason == "length"
    assert response.usage.completion_tokens == 3


def test_stop_sequences_end_the_answer_before_them(local_client: Client) -> None:
    response = local_client.chat("local", QUESTION, temperature=0, max_tokens=16, stop=[" Paris"])
    assert response.text == "The capital of France is"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "stop"


def test_a_seed_makes_sampling_reproducible(local_client: Client) -> None:
    first = local_client.chat("local", "Tell me a story.", temperature=1.0, seed=7, max_tokens=12)
    again = local_client.chat("local", "Tell me a story.", temperature=1.0, seed=7, max_tokens=12)
    assert first.text == again.text


def test_multi_message_conversation_uses_the_transcript(local_client: Client) -> None:
    response = local_client.chat("local", CONVERSATION, temperature=0, max_tokens=12)
    assert "4" in response.text
    request = build_request("gemma-3-270m", CONVERSATION)
    assert provider_of(local_client).prompt_text(request) == (
        "Answer briefly.\n\nUser: Hi\nAssistant: Hello! How can I help?\n"
        "User: What is 2+2?\nAssistant:"
    )


def test_a_final_assistant_message_is_continued(local_client: Client) -> None:
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "The"}]
    request = build_request("gemma-3-270m", messages)
    assert provider_of(local_client).prompt_text(request).endswith("Assistant: The")
    response = local_client.chat("local", messages, temperature=0, max_tokens=12)
    assert response.text.startswith(" capital")


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "stop"),
    [
        (QUESTION, 24, None),
        ("Tell me a story about a dragon.", 40, None),
        (CONVERSATION, 24, None),
        (QUESTION, 24, [" of Fr", "Paris"]),  # a stop that starts as a held-back tail
    ],
)
def test_stream_deltas_equal_the_whole_answer_at_temperature_zero(
    local_client: Client, prompt: Any, max_tokens: int, stop: list[str] | None
) -> None:
    options: dict[str, Any] = {"temperature": 0, "max_tokens": max_tokens, "stop": stop}
    whole = local_client.chat("local", prompt, **options)
    events = list(local_client.stream("local", prompt, **options))
    deltas, final = events[:-1], events[-1]
    assert deltas and all(e.type == "delta" and e.delta for e in deltas)
    assert "".join(e.delta for e in deltas) == whole.text
    assert final.type == "final"
    assert final.usage is not None and final.usage.source == "tokenizer"
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens
    assert final.usage.completion_tokens == whole.usage.completion_tokens
    assert final.finish_reason == whole.finish_reason
    assert final.response is not None and final.response.text == whole.text
    assert final.latency is not None and final.latency.queued_s is not None


async def test_async_stream_and_chat_agree(embedded_model_path: Path) -> None:
    async with AsyncClient(providers={"local": {"seed": 0}}) as client:
        whole = await client.chat("local", QUESTION, temperature=0, max_tokens=16)
        pieces = [
            e.delta
            async for e in client.stream("local", QUESTION, temperature=0, max_tokens=16)
            if e.type == "delta"
        ]
    assert "".join(pieces) == whole.text
    assert "Paris" in whole.text


def test_closing_a_stream_early_frees_the_model(local_client: Client) -> None:
    stream = local_client.stream("local", "Tell me a story.", temperature=0, max_tokens=64)
    first = next(iter(stream))
    assert first.type == "delta"
    stream.close()
    response = local_client.chat("local", QUESTION, temperature=0, max_tokens=16, timeout=60)
    assert "Paris" in response.text


# --------------------------------------------------------------------------- token counts


@pytest.mark.parametrize("prompt", [QUESTION, CONVERSATION])
def test_count_prompt_tokens_equals_the_prompt_tokens_generation_reports(
    local_client: Client, prompt: Any
) -> None:
    provider = provider_of(local_client)
    counted = provider.count_prompt_tokens(build_request("gemma-3-270m", prompt))
    response = local_client.chat("local", prompt, temperature=0, max_tokens=4)
    assert counted.method == "exact"
    assert counted.tokens == response.usage.prompt_tokens
    assert local_client.estimate("local", prompt, max_tokens=4).prompt_tokens == counted.tokens


def test_transcript_tokens_match_llama_cpp_tokenizing_the_same_text(
    local_client: Client, embedded_model_path: Path
) -> None:
    raw = llama_cpp.Llama(str(embedded_model_path), vocab_only=True, verbose=False)
    request = build_request("gemma-3-270m", CONVERSATION)
    text = provider_of(local_client).prompt_text(request)
    expected = len(raw.tokenize(text.encode(), add_bos=True, special=True))
    assert provider_of(local_client).count_prompt_tokens(request).tokens == expected


def test_gguf_chat_template_counts_match_llama_cpp_chat_completion(
    templated_client: Client, templated_model: Path
) -> None:
    raw = llama_cpp.Llama(str(templated_model), n_ctx=512, verbose=False)
    for prompt in (QUESTION, CONVERSATION):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        reference = raw.create_chat_completion(messages, max_tokens=1, temperature=0)
        request = build_request("default", prompt)
        counted = provider_of(templated_client).count_prompt_tokens(request)
        response = templated_client.chat("local:default", prompt, temperature=0, max_tokens=4)
        assert counted.tokens == reference["usage"]["prompt_tokens"]
        assert response.usage.prompt_tokens == counted.tokens
    raw.close()


def test_a_gguf_chat_template_is_used_when_the_file_has_one(
    templated_client: Client, templated_model: Path
) -> None:
    request = build_request("default", QUESTION)
    text = provider_of(templated_client).prompt_text(request)
    assert text == f"<bos><start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"
    response = templated_client.chat(f"local:{templated_model}", QUESTION, max_tokens=8)
    assert response.model == str(templated_model)
    assert response.usage.completion_tokens <= 8


def test_the_model_setting_is_reached_by_default_and_by_its_name(
    templated_client: Client, templated_model: Path, embedded_model_path: Path
) -> None:
    provider = provider_of(templated_client)
    for name in ("default", "templated", "templated.gguf", str(templated_model)):
        assert provider.resolve(name) == templated_model
    assert provider.resolve("gemma-3-270m") == embedded_model_path
    shadow = LocalProvider(
        "local", LocalSettings(model=str(embedded_model_path.parent / "gemma-3-270m.gguf"))
    )
    assert shadow.resolve("gemma-3-270m") == embedded_model_path  # never shadowed
    assert LocalProvider("local", LocalSettings()).resolve("default") == embedded_model_path


def test_a_named_llama_cpp_chat_format_renders_and_counts(
    embedded_model_path: Path,
) -> None:
    with Client(providers={"local": {"chat_format": "gemma", "seed": 0}}) as client:
        request = build_request("gemma-3-270m", CONVERSATION)
        text = provider_of(client).prompt_text(request)
        assert "<start_of_turn>user" in text and text.endswith("<start_of_turn>model\n")
        counted = provider_of(client).count_prompt_tokens(request)
        response = client.chat("local", CONVERSATION, temperature=0, max_tokens=4)
        assert response.usage.prompt_tokens == counted.tokens


# --------------------------------------------------------------------------- concurrency


def test_eight_threads_share_one_model(local_client: Client) -> None:
    expected = local_client.chat("local", QUESTION, temperature=0, max_tokens=16).text

    def ask(i: int) -> str:
        if i % 2:
            return local_client.chat("local", QUESTION, temperature=0, max_tokens=16).text
        return local_client.stream("local", QUESTION, temperature=0, max_tokens=16).text()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers == [expected] * 8


async def test_eight_asyncio_tasks_share_one_model(embedded_model_path: Path) -> None:
    async with AsyncClient(providers={"local": {"seed": 0}}) as client:
        expected = (await client.chat("local", QUESTION, temperature=0, max_tokens=16)).text

        async def ask(i: int) -> str:
            if i % 2:
                response = await client.chat("local", QUESTION, temperature=0, max_tokens=16)
                return response.text
            return await client.stream("local", QUESTION, temperature=0, max_tokens=16).text()

        answers = await asyncio.gather(*(ask(i) for i in range(8)))
    assert answers == [expected] * 8


async def test_leaving_an_async_stream_early_frees_the_model(embedded_model_path: Path) -> None:
    async with AsyncClient(providers={"local": {"seed": 0}}) as client:
        stream = client.stream("local", "Tell me a story.", temperature=0, max_tokens=64)
        async for event in stream:
            assert event.type == "delta"
            break
        await stream.aclose()
        response = await client.chat("local", QUESTION, temperature=0, max_tokens=16, timeout=60)
    assert "Paris" in response.text


# --------------------------------------------------------------------------- limits and errors


def test_prompt_plus_max_tokens_over_n_ctx_fails_before_generating(local_client: Client) -> None:
    before = evaluated_tokens(local_client)
    with pytest.raises(ContextLengthError) as caught:
        local_client.chat("local", QUESTION, max_tokens=5000)
    assert caught.value.field == "max_tokens"
    assert "13 tokens" in str(caught.value) and "5000" in str(caught.value)
    assert "4096" in str(caught.value) and "n_ctx" in str(caught.value)
    with pytest.raises(ContextLengthError) as caught:
        local_client.chat("local", "word " * 5000)
    assert caught.value.field == "messages"
    assert evaluated_tokens(local_client) == before
    assert len(caught.value.attempts) == 1  # not retried


class TickingClock(Clock):
    """Every reading of the clock moves time on by one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_deadline_passing_mid_generation_stops_it(embedded_model_path: Path) -> None:
    with Client(
        providers={"local": {"seed": 0}},
        clock=TickingClock(),
        timeout=12,
        retry=RetryPolicy.none(),
    ) as client:
        with pytest.raises(APITimeoutError) as caught:
            client.chat("local", "Tell me a long story.", temperature=0, max_tokens=200)
        assert "generated tokens" in str(caught.value)
        with pytest.raises(APITimeoutError):
            list(client.stream("local", "Tell me a long story.", temperature=0, max_tokens=200))
        # The lock was released: a call given more time still runs.
        answer = client.chat("local", QUESTION, temperature=0, max_tokens=16, timeout=10_000)
        assert "Paris" in answer.text


def test_a_missing_model_file_names_the_path(local_client: Client, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ConfigurationError) as caught:
        local_client.chat(f"local:{missing}", QUESTION)
    assert str(missing) in str(caught.value)


def test_a_file_that_is_not_gguf_names_the_path(local_client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ConfigurationError) as caught:
        local_client.chat(f"local:{fake}", QUESTION)
    assert str(fake) in str(caught.value) and "GGUF" in str(caught.value)


def test_a_damaged_gguf_is_a_configuration_error_not_a_crash(
    local_client: Client, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(ConfigurationError) as caught:
        local_client.chat(f"local:{broken}", QUESTION)
    assert str(broken) in str(caught.value)


def test_an_unknown_model_name_says_what_is_accepted(local_client: Client) -> None:
    with pytest.raises(ConfigurationError) as caught:
        local_client.chat("local:llama-70b", QUESTION)
    assert "local:gemma-3-270m" in str(caught.value) and ".gguf" in str(caught.value)


def test_a_path_model_string_loads_that_file(
    local_client: Client, embedded_model_path: Path
) -> None:
    response = local_client.chat(
        f"local:{embedded_model_path}", QUESTION, temperature=0, max_tokens=16
    )
    assert response.model == str(embedded_model_path)
    assert "Paris" in response.text
    provider = provider_of(local_client)
    # The same file is loaded once, whatever name reaches it.
    assert provider._by_name[str(embedded_model_path)] is provider._by_name["gemma-3-270m"]


def test_gpu_layers_on_a_cpu_only_build_warn_once_and_run_on_cpu(
    embedded_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build can offload to a GPU")
    caplog.set_level(logging.WARNING, logger="llmos.local")
    with Client(providers={"local": {"n_gpu_layers": -1, "seed": 0}}) as client:
        first = client.chat("local", QUESTION, temperature=0, max_tokens=16)
        client.chat("local", QUESTION, temperature=0, max_tokens=4)
    warnings = [r for r in caplog.records if "n_gpu_layers" in r.getMessage()]
    assert len(warnings) == 1 and "CPU" in warnings[0].getMessage()
    assert "Paris" in first.text


def test_loading_prints_nothing_to_stderr(
    embedded_model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with Client(providers={"local": {"seed": 0}}) as client:
        client.chat("local", QUESTION, temperature=0, max_tokens=2)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_verbose_lets_llama_cpp_print_its_logs(
    embedded_model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with Client(providers={"local": {"verbose": True}}) as client:
        client.chat("local", QUESTION, temperature=0, max_tokens=1)
    assert "llama_model_loader" in capfd.readouterr().err
    with Client(providers={"local": {}}) as client:  # a quiet provider silences them again
        client.chat("local", QUESTION, temperature=0, max_tokens=1)
    assert capfd.readouterr().err == ""


def test_tools_and_logprobs_are_refused_before_loading(local_client: Client) -> None:
    tool = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(UnsupportedFeatureError):
        local_client.chat("local", QUESTION, tools=[tool])
    with pytest.raises(UnsupportedFeatureError):
        local_client.chat("local", QUESTION, logprobs=True)


def test_unknown_extra_body_options_are_refused(local_client: Client) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        local_client.chat("local", QUESTION, extra_body={"n_probs": 3})
    assert caught.value.field == "extra_body.n_probs"
    response = local_client.chat(
        "local", QUESTION, temperature=0, max_tokens=16, extra_body={"repeat_penalty": 1.1}
    )
    assert response.text


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Client(providers={"local": {"llama_kwargs": {"n_ctx": 8}}}).provider("local")
    assert "n_ctx" in str(caught.value)
    with pytest.raises(ConfigurationError):
        Client(providers={"local": {"n_threads": 0}}).provider("local")


# --------------------------------------------------------------------------- JSON and capabilities


class City(BaseModel):
    city: str


def test_json_schema_output_is_enforced_by_a_grammar(local_client: Client) -> None:
    response = local_client.chat(
        "local",
        "What is the capital of France? Answer in JSON.",
        temperature=0,
        max_tokens=32,
        response_format=City,
    )
    assert response.finish_reason == "stop"
    assert isinstance(response.parsed, City)
    assert response.parsed.city == "Paris"


def test_json_object_output_is_json(local_client: Client) -> None:
    response = local_client.chat(
        "local",
        "Give the capital of France as JSON with a key city.",
        temperature=0,
        max_tokens=24,
        response_format={"type": "json_object"},
    )
    assert response.finish_reason == "stop"
    assert json.loads(response.text)["city"] == "Paris"


def test_capabilities_describe_the_local_model(local_client: Client) -> None:
    caps = provider_of(local_client).capabilities("gemma-3-270m")
    assert caps.context_window == 4096
    assert caps.runs_offline and not caps.needs_key
    assert caps.streaming and caps.json_schema and caps.json_object
    assert not caps.tools and not caps.logprobs and not caps.embeddings


def test_thread_defaults_count_physical_cores() -> None:
    assert 1 <= physical_cores() <= logical_cpus()
