"""Chat prompts with typed settings (issue 27 item 4): messages with templates and placeholders,
a config structured by cattrs, memory context accepted as is."""

from __future__ import annotations

import attrs
import pytest

from pgstash import (
    ConfigurationError,
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    MissingArgumentError,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresInstructionsRepository,
    PostgresModelMemory,
)
from pgstash.stores.chat import ChatPrompt


@attrs.frozen
class Settings:
    model: str
    temperature: float
    stop: tuple[str, ...] = ()


SUPPORT = InstructionsDeclaration(
    "support",
    arguments=(
        InstructionsArgumentDeclaration("product"),
        InstructionsArgumentDeclaration("tone", required=False),
    ),
)
MESSAGES = [
    {"role": "system", "content": "You support {product} users. Answer in a {tone} tone. {{Braces}} stay."},
    {"placeholder": "history"},
    {"role": "user", "content": "{question}"},
]


async def test_a_chat_prompt_round_trip_with_a_typed_config(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    stored = await repository.define(
        SUPPORT, messages=MESSAGES, config=Settings("small", 0.2, ("END",)), labels=("production",)
    )
    assert stored.kind == "chat" and stored.revision == 1
    assert stored.config == {"model": "small", "temperature": 0.2, "stop": ["END"]}
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    prompt = await repository.resolve(
        "support",
        {"product": "pgstash", "question": "How do I roll back?"},
        placeholders={"history": history},
        config_type=Settings,
        label="production",
    )
    assert isinstance(prompt, ChatPrompt)
    assert prompt.messages == [
        {"role": "system", "content": "You support pgstash users. Answer in a  tone. {Braces} stay."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "How do I roll back?"},
    ]
    assert prompt.config == Settings("small", 0.2, ("END",))
    assert (prompt.revision, prompt.stale) == (1, False)
    # the caller's lists are its own
    prompt.messages.clear()
    again = await repository.resolve(
        "support", {"product": "x", "question": "q"}, placeholders={"history": []}, config_type=dict
    )
    assert len(again.messages) == 2 and again.config == {
        "model": "small",
        "temperature": 0.2,
        "stop": ["END"],
    }
    assert (await repository.history("support"))[0].kind == "chat"


async def test_memory_context_fills_a_placeholder_as_is(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define(SUPPORT, messages=MESSAGES)
    memory = PostgresModelMemory("chat-1", postgres=postgres)
    await memory.remember(ModelInput("Is it fast?"), ModelOutput("Yes."))
    recall = await memory.recall()
    prompt = await repository.resolve(
        "support",
        {"product": "p", "tone": "warm", "question": "Why?"},
        placeholders={"history": recall.context},
    )
    assert prompt.messages[1:3] == [
        {"role": "user", "content": "Is it fast?"},
        {"role": "assistant", "content": "Yes."},
    ]
    assert prompt.config is None


async def test_chat_prompt_errors_are_clear(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define(SUPPORT, messages=MESSAGES, config={"model": "m", "temperature": "hot"})
    with pytest.raises(TypeError, match="chat prompt: resolve them with placeholders="):
        await repository.resolve("support", {"product": "p", "question": "q"})
    with pytest.raises(MissingArgumentError, match="'history'"):
        await repository.resolve("support", {"product": "p", "question": "q"}, placeholders={})
    with pytest.raises(MissingArgumentError, match="'product'"):
        await repository.resolve("support", {"question": "q"}, placeholders={"history": []})
    with pytest.raises(ValueError, match="no placeholder"):
        await repository.resolve(
            "support", {"product": "p", "question": "q"}, placeholders={"history": [], "x": []}
        )
    with pytest.raises(ConfigurationError, match="does not fit Settings"):
        await repository.resolve(
            "support", {"product": "p", "question": "q"}, placeholders={"history": []}, config_type=Settings
        )
    with pytest.raises(TypeError, match="placeholder 'history'"):
        await repository.resolve("support", {"product": "p", "question": "q"}, placeholders={"history": [3]})


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], ValueError),
        ("system: hi", TypeError),
        ([{"role": "system"}], ValueError),
        ([{"role": "system", "content": "{a.b}"}], ValueError),
        ([{"placeholder": "not an identifier"}], ValueError),
        ([{"placeholder": "h"}, {"placeholder": "h"}], ValueError),
        ([{"role": "", "content": "x"}], TypeError),
        ([{"role": "user", "content": "nul\x00"}], ValueError),
    ],
)
async def test_bad_messages_are_refused_before_anything_is_written(
    postgres: Postgres, messages: object, error: type[Exception]
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    with pytest.raises(error):
        await repository.define("chat", messages=messages)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await repository.define("chat", "text", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(TypeError):
        await repository.define("chat", "text", config=["not", "a", "config"])
    assert await postgres.fetch_value("SELECT count(*) FROM instructions") == 0


async def test_a_text_revision_resolved_as_chat_is_one_system_message(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("plain", "Be {mood}.", config=Settings("m", 1.0))
    prompt = await repository.resolve("plain", {"mood": "kind"}, config_type=Settings)
    assert prompt.messages == [{"role": "system", "content": "Be kind."}]
    assert prompt.config == Settings("m", 1.0)
    assert await repository.resolve("plain", {"mood": "kind"}) == "Be kind."
