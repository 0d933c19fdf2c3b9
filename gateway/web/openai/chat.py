"""Chat messages -> one plain prompt. GPT-Neo is not a chat model: it continues text, so a conversation is
written out as a transcript ending where the assistant's turn begins, and generation stops where the
model would start writing the user's next turn.

The template is Jinja (as Hugging Face chat templates are), run in a sandbox: it is configuration, but a
template must not reach Python objects. It sees `messages`, each with `role`, `content` (a string) and,
when the client gave one, `name` (OpenAI's participant name: letters, digits, `_` and `-`, so that it
cannot write a turn of its own into the transcript). The default template does not render `name`: its
speakers are the roles, which is where the stop sequence cuts; a custom template may (`m.name or m.role`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.errors import InvalidArgument

DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m.role | capitalize }}: {{ m.content }}\n{% endfor %}Assistant:"
)
# Where the model starts the user's next turn on its own: the answer ends there.
DEFAULT_CHAT_STOP = ("\nUser:",)
ROLES = ("system", "developer", "user", "assistant")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's pattern for a participant's name


class ChatTemplateError(ValueError):
    """The configured template does not compile; the message says where."""


def _content(index: int, content: Any) -> str:
    """A message's text: a string, or a list of text parts (OpenAI's content parts)."""
    where = f"messages[{index}].content"
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
            if not isinstance(text, str):
                raise InvalidArgument(where, "only text parts are supported")
            texts.append(text)
        return "".join(texts)
    raise InvalidArgument(where, "must be a string or a list of text parts")


def normalise_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidArgument("messages", "must be a non-empty list")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidArgument(f"messages[{i}]", "must be an object")
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise InvalidArgument(f"messages[{i}].{extra[0]}", "is not supported (text messages only)")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidArgument(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
        normalised = {"role": role, "content": _content(i, message.get("content"))}
        if message.get("name") is not None:
            normalised["name"] = _name(i, message["name"])
        out.append(normalised)
    return out


def _name(index: int, name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidArgument(f"messages[{index}].name", "must be 1 to 64 letters, digits, '_' or '-'")
    return name


@dataclass(frozen=True)
class ChatTemplate:
    source: str = DEFAULT_CHAT_TEMPLATE
    stop: tuple[str, ...] = DEFAULT_CHAT_STOP

    def __post_init__(self) -> None:
        try:
            template = ImmutableSandboxedEnvironment(keep_trailing_newline=True).from_string(self.source)
        except TemplateError as exc:
            raise ChatTemplateError(f"chat_template does not compile: {exc}") from None
        object.__setattr__(self, "_template", template)

    def render(self, messages: Any) -> str:
        """The prompt for `messages`; a 400 naming the message that is not plain text."""
        normalised = normalise_messages(messages)
        try:
            return str(self._template.render(messages=normalised))  # type: ignore[attr-defined]
        except TemplateError as exc:  # e.g. a template that raises for an unexpected role
            raise InvalidArgument("messages", f"the gateway's chat template refused them: {exc}") from None
