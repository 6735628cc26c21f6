"""draive 0.103's own tests of its templates adapter (tests/test_postgres_templates.py upstream:
rows mocked) on the real database through pgstash.draive; and the template property: draive parses
the same variables from what it stored and from what it reads back."""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.draive import newest_only

pytestmark = newest_only


def scope(dsn: str) -> Any:
    from draive import ctx

    import pgstash.draive as ours

    return ctx.scope(
        "templates",
        ours.PostgresTemplatesRepository(),
        disposables=(ours.PostgresConnectionPool.of(dsn=dsn),),
    )


async def test_templates_page_by_cursor_and_by_legacy_offset(database_dsn: str) -> None:
    from draive import TemplateDeclaration, TemplatesRepository
    from haiway import Pagination

    declarations = [
        TemplateDeclaration(
            identifier="welcome",
            description="Welcome template",
            variables={"name": "Recipient name"},
            meta={"channel": "email"},
        ),
        TemplateDeclaration(
            identifier="summary", description=None, variables={"title": "Summary title"}, meta={}
        ),
        TemplateDeclaration(
            identifier="closing", description="Closing template", variables={}, meta={"scope": "internal"}
        ),
    ]
    async with scope(database_dsn):
        for declaration in declarations:
            content = " ".join("{%" + name + "%}" for name in declaration.variables) or "plain"
            await TemplatesRepository.define(declaration, content=content)
        page_1 = await TemplatesRepository.templates(Pagination.of(limit=2))
        page_2 = await TemplatesRepository.templates(page_1.pagination)
        assert page_1.items == (declarations[2], declarations[1])  # sorted by identifier
        assert page_1.pagination.token == "templates:cursor:summary"
        assert page_2.items == (declarations[0],)
        assert page_2.pagination.token is None
        legacy = await TemplatesRepository.templates(Pagination.of(limit=2).with_token("templates:2"))
        assert legacy.items == (declarations[0],)
        assert legacy.pagination.token is None


async def test_define_preserves_an_empty_description(database_dsn: str, postgres: Any) -> None:
    from draive import TemplateDeclaration, TemplatesRepository
    from haiway import Meta, Pagination

    async with scope(database_dsn):
        await TemplatesRepository.define(
            TemplateDeclaration(identifier="welcome", description="", variables={}, meta=Meta.empty),
            content="Hello",
        )
        listed = await TemplatesRepository.templates(Pagination.of(limit=5))
    assert listed.items[0].description == ""
    row = await postgres.fetch_one("SELECT description, content, arguments, meta FROM instructions")
    assert dict(row) == {"description": "", "content": "Hello", "arguments": [], "meta": {}}


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
PIECES = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8),
    NAMES.map(lambda name: "{%" + name + "%}"),
    st.sampled_from(["{", "}", "%", "{%", "%}", "{{", "{% x %}"]),
)


def test_draive_parses_the_same_variables_from_what_it_stored_and_what_it_reads_back(
    database_dsn: str,
) -> None:
    import asyncio

    from draive import Template, TemplateDeclaration, TemplatesRepository
    from draive.multimodal.templates.variables import parse_template_variables

    async def run(content: str) -> None:
        async with scope(database_dsn):
            variables = {name: f"about {name}" for name in parse_template_variables(content)}
            await TemplatesRepository.define(
                TemplateDeclaration.of("property", variables=variables), content=content
            )
            loaded = await TemplatesRepository.load(Template.of("property"))
            (stored,) = (await TemplatesRepository.templates()).items
        assert loaded == content
        assert set(parse_template_variables(loaded)) == set(parse_template_variables(content))
        assert dict(stored.variables) == variables

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(PIECES, max_size=6).map("".join))
    def check(content: str) -> None:
        asyncio.run(run(content))

    check()
