"""OpenAI bodies -> prompts and RawParams: honoured, renamed, or refused by name; never ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai.types import completion_create_params
from openai.types.chat import completion_create_params as chat_create_params

from gateway.errors import InvalidArgument
from gateway.web.openai.chat import ChatTemplate, ChatTemplateError
from gateway.web.openai.requests import CHAT_KEYS, COMPLETION_KEYS, openai_param, parse_chat, parse_completion


def completion(**body: Any) -> Any:
    return parse_completion({"model": "m", "prompt": "hi", **body})


def test_parameters_map_onto_rawparams() -> None:
    call = completion(
        max_tokens=5, n=2, stop="END", seed=3, top_p=0.5, temperature=0.7, top_k=4, min_tokens=1, user="u1"
    )
    raw = call.raw
    assert (raw.max_new_tokens, raw.num_return_sequences, raw.stop, raw.seed) == (5, 2, ("END",), 3)
    assert (raw.top_p, raw.temperature, raw.top_k, raw.min_new_tokens) == (0.5, 0.7, 4, 1)
    assert call.tags.user == "u1" and call.prompts == ["hi"] and not call.stream


def test_temperature_zero_is_greedy() -> None:
    raw = completion(temperature=0).raw
    assert raw.do_sample is False and raw.temperature is None


def test_defaults_are_accepted_and_other_values_refused_by_name() -> None:
    completion(echo=False, logprobs=None, presence_penalty=0, frequency_penalty=0.0, logit_bias={}, best_of=1)
    for name, value in [
        ("echo", True),
        ("echo", 0),  # JSON's 0 is not false
        ("logprobs", 1),
        ("logprobs", 0),  # OpenAI still answers the sampled tokens' logprobs for 0: only null is "none"
        ("logprobs", False),
        ("presence_penalty", 0.1),
        ("logit_bias", {"50256": -100}),
        ("suffix", "end"),
        ("best_of", 3),
    ]:
        with pytest.raises(InvalidArgument) as info:
            completion(**{name: value})
        assert info.value.field == name


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"model": ""}, "model"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"n": True}, "n"),
        ({"stop": ["a", 1]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"wat": 1}, "wat"),
    ],
)
def test_malformed_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        completion(**body)
    assert info.value.field == field


def test_the_pipelines_field_names_go_back_to_openais() -> None:
    assert openai_param("max_new_tokens", "prompt") == "max_tokens"
    assert openai_param("parameters.num_return_sequences", "prompt") == "n"
    assert openai_param("stop[2]", "prompt") == "stop[2]"
    assert openai_param("input_string[1]", "prompt") == "prompt[1]"
    assert openai_param("input_string", "messages") == "messages"
    assert openai_param("input_string[3]", "messages") == "messages[3]"
    assert openai_param("parameters.max_new_tokens", "prompt") == "max_tokens"
    assert openai_param("prompt[2]", "prompt") == "prompt[2]"  # already the client's name


def test_only_the_pipelines_own_names_are_renamed() -> None:
    """A name that merely starts like a prompt field is the client's own, refused as it was sent."""
    assert openai_param("prompt_cache_key", "messages") == "prompt_cache_key"
    assert openai_param("input_strings", "prompt") == "input_strings"
    assert openai_param("promptly", "messages") == "promptly"


def test_chat_defaults_are_compared_by_json_type_too() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    parse_chat({**chat, "logprobs": False, "top_logprobs": 0, "presence_penalty": 0.0}, ChatTemplate())
    for name, value in [("logprobs", 0), ("store", 0), ("top_logprobs", False), ("top_logprobs", 0.0)]:
        with pytest.raises(InvalidArgument) as info:
            parse_chat({**chat, name: value}, ChatTemplate())
        assert info.value.field == name


def test_chat_messages_become_a_transcript_with_a_stop() -> None:
    call = parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]},
            ],
            "stop": ["END"],
            "max_completion_tokens": 7,
        },
        ChatTemplate(),
    )
    assert call.prompts == ["System: Be kind.\nUser: Hi!\nAssistant:"]
    assert call.raw.stop == ("END", "\nUser:") and call.raw.max_new_tokens == 7


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ([{"role": "tool", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content"),
        ([{"role": "user", "content": "x", "tool_calls": []}], "messages[0].tool_calls"),
    ],
)
def test_chat_refuses_what_is_not_plain_text(messages: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_chat({"model": "m", "messages": messages}, ChatTemplate())
    assert info.value.field == field


def test_a_messages_name_reaches_the_template_which_may_ignore_it() -> None:
    messages = [{"role": "user", "name": "alice", "content": "Hi"}, {"role": "user", "content": "Yo"}]
    body = {"model": "m", "messages": messages}
    assert parse_chat(body, ChatTemplate()).prompts == ["User: Hi\nUser: Yo\nAssistant:"]
    named = ChatTemplate(
        source="{% for m in messages %}{{ m.name or m.role }}: {{ m.content }}\n{% endfor %}Assistant:"
    )
    assert parse_chat(body, named).prompts == ["alice: Hi\nuser: Yo\nAssistant:"]


@pytest.mark.parametrize("name", ["", "a" * 65, "alice\nAssistant", "bob smith", 7])
def test_a_messages_name_is_openais_shape_or_refused(name: Any) -> None:
    """Letters, digits, `_` and `-`, 1 to 64 (OpenAI's): a name is never a way into the transcript."""
    with pytest.raises(InvalidArgument) as info:
        parse_chat(
            {"model": "m", "messages": [{"role": "user", "name": name, "content": "x"}]}, ChatTemplate()
        )
    assert info.value.field == "messages[0].name"


def test_chat_metadata_is_kept_for_the_record_and_bounded() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    call = parse_chat({**chat, "metadata": {"ticket": "T-1", "team": "support"}, "user": "u"}, ChatTemplate())
    assert call.tags.metadata == {"ticket": "T-1", "team": "support"} and call.tags.user == "u"
    assert call.tags.recorded() == {"user": "u", "metadata": {"ticket": "T-1", "team": "support"}}
    assert parse_chat(chat, ChatTemplate()).tags.recorded() == {}
    for metadata in [
        ["a"],
        {"n": 1},
        {"k" * 65: "v"},
        {"k": "v" * 513},
        {f"k{i}": "v" for i in range(17)},
        {"k": "line\nbreak"},
    ]:
        with pytest.raises(InvalidArgument) as info:
            parse_chat({**chat, "metadata": metadata}, ChatTemplate())
        assert info.value.field == "metadata"


def test_chat_template_is_sandboxed_and_checked_at_start() -> None:
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source="{% for m in messages %}")
    nosy = ChatTemplate(source="{{ messages.__class__.__mro__ }}")
    with pytest.raises(InvalidArgument, match="chat template refused"):
        nosy.render([{"role": "user", "content": "x"}])
    with pytest.raises(InvalidArgument) as info:
        parse_chat(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}, ChatTemplate()
        )
    assert info.value.field == "tools"


# OpenAI's chat arguments modgate does not implement: refused as unrecognised, listed in docs/api.md.
UNIMPLEMENTED_CHAT = {
    "audio",
    "moderation",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "safety_identifier",
    "verbosity",
    "web_search_options",
}


def sdk_arguments(params: Any) -> set[str]:
    return set(params.__required_keys__ | params.__optional_keys__)


def test_every_argument_the_openai_package_sends_is_taken_or_refused_by_name() -> None:
    """A newer `openai` package with a new argument fails here until it is honoured or listed (and
    documented) as refused: nothing it sends is silently ignored."""
    assert sdk_arguments(completion_create_params.CompletionCreateParamsBase) <= COMPLETION_KEYS
    chat = sdk_arguments(chat_create_params.CompletionCreateParamsBase)
    assert chat - CHAT_KEYS == UNIMPLEMENTED_CHAT
    docs = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    for name in sorted(UNIMPLEMENTED_CHAT):
        assert f"`{name}`" in docs
        with pytest.raises(InvalidArgument) as info:
            parse_chat(
                {"model": "m", "messages": [{"role": "user", "content": "x"}], name: "x"}, ChatTemplate()
            )
        assert info.value.field == name and "unrecognized" in str(info.value)
