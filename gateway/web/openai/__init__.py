"""The OpenAI-compatible HTTP API (docs/api.md, "HTTP: the OpenAI-compatible API")."""

from gateway.web.openai.chat import DEFAULT_CHAT_STOP, DEFAULT_CHAT_TEMPLATE, ChatTemplate, ChatTemplateError
from gateway.web.openai.endpoints import OpenAIEndpoints

__all__ = [
    "DEFAULT_CHAT_STOP",
    "DEFAULT_CHAT_TEMPLATE",
    "ChatTemplate",
    "ChatTemplateError",
    "OpenAIEndpoints",
]
