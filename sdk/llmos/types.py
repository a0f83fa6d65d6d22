"""Pydantic models shared by every layer: messages, requests, responses, stream events, usage, cost.

Requests are validated once, at the client boundary; responses are built by providers from data
they already checked, so hot paths construct them without re-validation.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field, field_validator

__all__ = [
    "AssistantMessage",
    "Attempt",
    "ChatRequest",
    "ChatResponse",
    "Cost",
    "CostEstimate",
    "Document",
    "EmbeddingResponse",
    "FinishReason",
    "Latency",
    "Message",
    "NamedToolChoice",
    "ResponseFormat",
    "StreamEvent",
    "SystemMessage",
    "TokenCount",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolMessage",
    "TopLogprob",
    "Usage",
    "UserMessage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
"""Why generation ended, normalised across providers."""

UsageSource = Literal["provider", "tokenizer", "approximate", "missing"]
"""Where token counts came from: provider usage, an exact tokenizer, an approximation, or none."""


class _Model(BaseModel):
    # Inputs reject unknown fields, so a misspelt field is an error rather than silently ignored.
    model_config = ConfigDict(extra="forbid")


class _Output(BaseModel):
    # Outputs accept their own serialised form back (computed fields included).
    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------- messages


class ToolCall(_Model):
    """A function call the model asked for; ``arguments`` is the JSON text it produced."""

    id: str
    name: str
    arguments: str = "{}"
    type: Literal["function"] = "function"

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``json.JSONDecodeError`` if the model erred)."""
        return json.loads(self.arguments or "{}")


class SystemMessage(_Model):
    """Instructions for the model."""

    role: Literal["system"] = "system"
    content: str
    name: str | None = None


class UserMessage(_Model):
    """What the user said."""

    role: Literal["user"] = "user"
    content: str
    name: str | None = None


class AssistantMessage(_Model):
    """What the model said: text, tool calls, or both."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    name: str | None = None


class ToolMessage(_Model):
    """The result of a tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: str = Field(min_length=1)
    content: str
    name: str | None = None


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]
"""Any chat message, told apart by ``role``."""


# --------------------------------------------------------------------------- request parts


class Tool(_Model):
    """A function the model may call, described by a JSON schema of its parameters."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class NamedToolChoice(_Model):
    """Force the model to call the named tool."""

    name: str


ToolChoice = Union[Literal["auto", "none", "required"], NamedToolChoice]
"""How the model may use tools: ``auto``, ``none``, ``required`` or a named tool."""


class ResponseFormat(_Model):
    """The shape the output must take: free text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    json_schema: dict[str, Any] | None = None
    strict: bool | None = None
    _output_type: builtins.type[BaseModel] | None = PrivateAttr(default=None)

    @property
    def output_type(self) -> builtins.type[BaseModel] | None:
        """The pydantic class the output is parsed into, when one was given."""
        return self._output_type

    @classmethod
    def from_model(
        cls, model: builtins.type[BaseModel], *, strict: bool | None = None
    ) -> ResponseFormat:
        """A JSON-schema format built from a pydantic class; responses then carry ``parsed``."""
        fmt = cls(
            type="json_schema",
            name=model.__name__,
            json_schema=model.model_json_schema(),
            strict=strict,
        )
        fmt._output_type = model
        return fmt


class Document(_Model):
    """A grounding document for providers that answer from given sources (AI21 ``documents``)."""

    content: str
    id: str | None = None
    metadata: dict[str, str] | None = None


class ChatRequest(_Model):
    """One chat call, validated: every provider receives this and nothing looser."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    documents: list[Document] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(s == "" for s in value):
            raise ValueError("stop sequences must be non-empty strings")
        return value or None

    def wants(self) -> set[str]:
        """The capabilities this request needs from its target (names of Capabilities fields)."""
        needed: set[str] = set()
        if self.tools:
            needed.add("tools")
        if self.response_format is not None and self.response_format.type != "text":
            needed.add(self.response_format.type)
        if self.logprobs:
            needed.add("logprobs")
        if self.documents:
            needed.add("documents")
        if self.temperature not in (None, 1) or self.top_p not in (None, 1):
            needed.add("sampling")
        return needed


# --------------------------------------------------------------------------- response parts


class Usage(_Output):
    """Token counts of one call.

    ``prompt_tokens`` includes cached tokens and ``completion_tokens`` includes reasoning tokens.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    source: UsageSource = "provider"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class Latency(_Output):
    """How long a call took, in seconds. ``ttft_s`` (time to first token) is set for streams."""

    total_s: float = 0.0
    ttft_s: float | None = None
    queued_s: float | None = None


class Cost(_Output):
    """What a call cost, in USD, from the price catalog. ``total_usd`` is None when unknown."""

    total_usd: Decimal | None
    input_usd: Decimal | None = None
    cached_input_usd: Decimal | None = None
    cache_write_usd: Decimal | None = None
    output_usd: Decimal | None = None
    compute_usd: Decimal | None = None
    reason: str | None = None
    price_key: str | None = None
    price_source: str | None = None
    price_as_of: str | None = None


class TopLogprob(_Output):
    """One alternative token and its log-probability."""

    token: str
    logprob: float


class TokenLogprob(_Output):
    """A generated token, its log-probability, and the top alternatives when asked for."""

    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Attempt(_Output):
    """One try at one target, successful or not; the retry and fallback history of a call."""

    target: str
    number: int = 1
    ok: bool
    error_type: str | None = None
    status_code: int | None = None
    message: str | None = None
    waited_s: float = 0.0
    duration_s: float = 0.0
    skipped: bool = False


class ChatResponse(_Output):
    """The answer to one chat call, the same shape from every provider."""

    id: str | None = None
    provider: str
    model: str
    target: str
    message: AssistantMessage
    finish_reason: FinishReason
    raw_finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency: Latency = Field(default_factory=Latency)
    cost: Cost | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    parsed: Any = None
    parse_error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        """The message text ("" when the model only called tools)."""
        return self.message.content or ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the model asked for."""
        return self.message.tool_calls


class ToolCallDelta(_Output):
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


StreamEventType = Literal["delta", "tool_call", "final"]


class StreamEvent(_Output):
    """One event of a stream: a text delta, a tool-call fragment, or the final summary.

    The final event (``type == "final"``) carries finish_reason, usage, latency and cost, and the
    whole assembled ``response``.
    """

    type: StreamEventType = "delta"
    delta: str = ""
    tool_call: ToolCallDelta | None = None
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    latency: Latency | None = None
    cost: Cost | None = None
    id: str | None = None
    model: str | None = None
    logprobs: list[TokenLogprob] | None = None
    response: ChatResponse | None = None

    @property
    def is_final(self) -> bool:
        """True for the last event of a stream."""
        return self.type == "final"


class EmbeddingResponse(_Output):
    """Embeddings for a list of inputs, in input order."""

    provider: str
    model: str
    target: str
    embeddings: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
    latency: Latency = Field(default_factory=Latency)
    cost: Cost | None = None
    attempts: list[Attempt] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was obtained (``exact`` tokenizer or an ``approximate`` one).

    A plain frozen dataclass rather than a pydantic model: counting is a hot loop, and building
    a validated model cost more than tiktoken's own work on short texts.
    """

    tokens: int
    method: Literal["exact", "approximate"]
    tokenizer: str


class CostEstimate(_Output):
    """What a call will cost before it is sent: worst case (all of max_tokens) and expected."""

    target: str
    prompt_tokens: int
    prompt_tokens_source: str
    prompt_tokens_exact: bool
    max_output_tokens: int
    expected_output_tokens: int
    worst_case_usd: Decimal | None
    expected_usd: Decimal | None
    reason: str | None = None
    price_key: str | None = None
    price_source: str | None = None
    price_as_of: str | None = None
