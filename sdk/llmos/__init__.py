"""llmos: one typed interface to OpenAI, AI21, Hugging Face, OpenAI-compatible servers and local
GGUF models, with one retry layer, fallbacks, costs, budgets and comparisons.

    from llmos import Client
    with Client() as client:
        print(client.chat("local:gemma-3-270m", "What is the capital of France?").text)

Importing llmos is light: public names load on first use, and no provider SDK, model or price
data is touched until a call needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmos._version import __version__

if TYPE_CHECKING:
    from llmos.client import AsyncClient, Client
    from llmos.errors import (
        AllProvidersFailedError,
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        BudgetExceededError,
        CircuitOpenError,
        ClientRateLimitError,
        ConfigurationError,
        ConflictError,
        ContentFilterError,
        ContextLengthError,
        DeadlineExceededError,
        InvalidRequestError,
        InvalidResponseError,
        LLMOSError,
        MissingAPIKeyError,
        ModelLoadingError,
        NotFoundError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        ServerError,
        UnsupportedFeatureError,
    )
    from llmos.pricing import ModelDeprecationWarning
    from llmos.providers.base import Capabilities, Provider, ProviderSettings
    from llmos.retry import RetryPolicy
    from llmos.routing import CircuitBreaker
    from llmos.streaming import AsyncChatStream, ChatStream
    from llmos.timeouts import Timeout
    from llmos.types import (
        AssistantMessage,
        Attempt,
        ChatRequest,
        ChatResponse,
        Cost,
        CostEstimate,
        Document,
        EmbeddingResponse,
        Latency,
        Message,
        ResponseFormat,
        StreamEvent,
        SystemMessage,
        Tool,
        ToolCall,
        ToolMessage,
        Usage,
        UserMessage,
    )

# Public name -> module that defines it; loaded on first attribute access.
_EXPORTS: dict[str, str] = {
    "Client": "llmos.client",
    "AsyncClient": "llmos.client",
    "ChatStream": "llmos.streaming",
    "AsyncChatStream": "llmos.streaming",
    "RetryPolicy": "llmos.retry",
    "CircuitBreaker": "llmos.routing",
    "Timeout": "llmos.timeouts",
    "Capabilities": "llmos.providers.base",
    "ModelDeprecationWarning": "llmos.pricing",
    "Provider": "llmos.providers.base",
    "ProviderSettings": "llmos.providers.base",
    "AssistantMessage": "llmos.types",
    "Attempt": "llmos.types",
    "ChatRequest": "llmos.types",
    "ChatResponse": "llmos.types",
    "Cost": "llmos.types",
    "CostEstimate": "llmos.types",
    "Document": "llmos.types",
    "EmbeddingResponse": "llmos.types",
    "Latency": "llmos.types",
    "Message": "llmos.types",
    "ResponseFormat": "llmos.types",
    "StreamEvent": "llmos.types",
    "SystemMessage": "llmos.types",
    "Tool": "llmos.types",
    "ToolCall": "llmos.types",
    "ToolMessage": "llmos.types",
    "Usage": "llmos.types",
    "UserMessage": "llmos.types",
    "AllProvidersFailedError": "llmos.errors",
    "ModelLoadingError": "llmos.errors",
    "DeadlineExceededError": "llmos.errors",
    "ClientRateLimitError": "llmos.errors",
    "CircuitOpenError": "llmos.errors",
    "APIConnectionError": "llmos.errors",
    "APIError": "llmos.errors",
    "APITimeoutError": "llmos.errors",
    "AuthenticationError": "llmos.errors",
    "BudgetExceededError": "llmos.errors",
    "ConfigurationError": "llmos.errors",
    "ConflictError": "llmos.errors",
    "ContentFilterError": "llmos.errors",
    "ContextLengthError": "llmos.errors",
    "InvalidRequestError": "llmos.errors",
    "InvalidResponseError": "llmos.errors",
    "LLMOSError": "llmos.errors",
    "MissingAPIKeyError": "llmos.errors",
    "NotFoundError": "llmos.errors",
    "PermissionDeniedError": "llmos.errors",
    "QuotaExceededError": "llmos.errors",
    "RateLimitError": "llmos.errors",
    "ServerError": "llmos.errors",
    "UnsupportedFeatureError": "llmos.errors",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AllProvidersFailedError",
    "AssistantMessage",
    "AsyncChatStream",
    "AsyncClient",
    "Attempt",
    "AuthenticationError",
    "BudgetExceededError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "ClientRateLimitError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextLengthError",
    "Cost",
    "CostEstimate",
    "DeadlineExceededError",
    "Document",
    "EmbeddingResponse",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMOSError",
    "Latency",
    "Message",
    "MissingAPIKeyError",
    "ModelDeprecationWarning",
    "ModelLoadingError",
    "NotFoundError",
    "PermissionDeniedError",
    "Provider",
    "ProviderSettings",
    "QuotaExceededError",
    "RateLimitError",
    "ResponseFormat",
    "RetryPolicy",
    "ServerError",
    "StreamEvent",
    "SystemMessage",
    "Timeout",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "UnsupportedFeatureError",
    "Usage",
    "UserMessage",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return __all__
