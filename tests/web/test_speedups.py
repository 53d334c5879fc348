"""The framework patches in quartapp.web.speedups: each still does what it claims.

If an upgrade of Quart, Quart-WTF or itsdangerous changes what a patch relies on,
the test of that patch fails here, where its comment says what to do instead.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from itsdangerous import BadSignature
from quart import Quart, g, get_flashed_messages, render_template_string, session
from quart import app as quart_app
from quart_wtf.utils import generate_csrf, validate_csrf
from wtforms import ValidationError

from quartapp import create_app
from quartapp.web import speedups
from quartapp.web.messages import flash
from quartapp.web.sessions import CookieSessions
from tests.conftest import TEST_SECRET_KEY, make_settings


def counting_builder(app: Quart) -> list[str]:
    """Count the calls that reach the app's real ``url_for``, by endpoint."""
    calls: list[str] = []
    build = app.url_for

    def url_for(endpoint: str, **values: Any) -> str:
        calls.append(endpoint)
        return build(endpoint, **values)

    app.url_for = url_for  # type: ignore[method-assign]  # the patch wraps what it finds
    return calls


def bare_app() -> Quart:
    app = Quart(__name__)
    app.config.update(SECRET_KEY=TEST_SECRET_KEY, WTF_CSRF_SECRET_KEY=TEST_SECRET_KEY)

    @app.get("/")
    async def index() -> str:
        return "index"

    return app


async def test_fixed_links_are_built_once_per_root_path() -> None:
    app = bare_app()
    calls = counting_builder(app)
    speedups.cache_fixed_urls(app)
    url_for = cast(Callable[..., str], app.jinja_env.globals["url_for"])

    async with app.test_request_context("/"):
        links = [url_for("static", filename="style.css") for _ in range(3)]
        index = [url_for("index") for _ in range(3)]
    async with app.test_request_context("/", root_path="/mounted"):
        mounted = url_for("index")

    assert links == ["/static/style.css"] * 3
    assert index == ["/"] * 3
    assert mounted == "/mounted/"
    assert calls == ["static", "index", "index"]


async def test_links_with_arguments_are_built_every_time() -> None:
    app = bare_app()
    calls = counting_builder(app)
    speedups.cache_fixed_urls(app)
    url_for = cast(Callable[..., str], app.jinja_env.globals["url_for"])

    async with app.test_request_context("/"):
        links = [url_for("index", next=f"/{n}") for n in range(2)]

    assert links == ["/?next=/0", "/?next=/1"]
    assert calls == ["index", "index"]


async def test_fixed_links_stay_bounded() -> None:
    app = bare_app()
    calls = counting_builder(app)
    speedups.cache_fixed_urls(app)
    url_for = cast(Callable[..., str], app.jinja_env.globals["url_for"])

    async with app.test_request_context("/"):
        for n in range(speedups.FIXED_URLS + 1):
            url_for("static", filename=f"{n}.css")
        url_for("static", filename="0.css")  # forgotten when the cache was cleared

    assert len(calls) == speedups.FIXED_URLS + 2


async def test_context_processors_run_on_the_event_loop_thread(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    threads: list[int] = []

    @app.context_processor
    def record_thread() -> dict[str, object]:
        threads.append(threading.get_ident())
        return {}

    speedups.run_context_processors_inline(app)
    processors = [p for ps in app.template_context_processors.values() for p in ps]
    async with app.test_request_context("/"):
        await render_template_string("{{ csrf_token() }}")

    assert all(inspect.iscoroutinefunction(p) for p in processors)
    assert threads == [threading.get_ident()]


async def test_the_app_inlines_its_context_processors(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    processors = [p for ps in app.template_context_processors.values() for p in ps]

    assert len(processors) >= 2  # Quart's default one and Quart-WTF's csrf_token
    assert all(inspect.iscoroutinefunction(p) for p in processors)


async def test_templates_are_compiled_for_jinja_sync_path(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    environment = app.jinja_env

    assert not environment.is_async
    # Every template compiles for the sync path, and nothing a template can call (a
    # global, or a value the context processors add) is a coroutine function, whose
    # call would render as a coroutine's repr instead of being awaited.
    for name in environment.list_templates():
        assert isinstance(environment.get_template(name), speedups.SyncTemplate), name
    async with app.test_request_context("/"):
        context: dict[str, Any] = {}
        await app.update_template_context(context)
    values = {**environment.globals, **context}
    assert not [name for name, value in values.items() if inspect.iscoroutinefunction(value)]


async def test_sync_templates_still_render_through_quart(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    async with app.test_request_context("/"):
        await flash("Saved.")
        page = await render_template_string(
            "{% for m in get_flashed_messages() %}<p>{{ m }}</p>{% endfor %}{{ csrf_token() }}"
        )
        token = page.removeprefix("<p>Saved.</p>")

        assert page.startswith("<p>Saved.</p>")
        assert "coroutine" not in page
        validate_csrf(token)  # raises if the token is not this session's


async def test_session_signer_is_built_once_per_set_of_keys() -> None:
    app = bare_app()
    app.config["SECRET_KEY_FALLBACKS"] = []
    sessions = CookieSessions()

    first = sessions.get_signing_serializer(app)
    again = sessions.get_signing_serializer(app)
    app.secret_key = "another-key-0123456789abcdefghijklmnopqrstuvwx"
    rotated = sessions.get_signing_serializer(app)

    assert first is not None
    assert again is first
    assert rotated is not None
    assert rotated is not first
    assert rotated.loads(rotated.dumps({"a": 1})) == {"a": 1}
    with pytest.raises(BadSignature):
        rotated.loads(first.dumps({"a": 1}))


async def test_renewed_csrf_token_belongs_to_the_cleared_session() -> None:
    app = bare_app()
    async with app.test_request_context("/"):
        old = generate_csrf()
        session.clear()
        # What the patch relies on: Quart-WTF still hands back its cached token.
        assert generate_csrf() == old
        assert g.get(speedups.CSRF_FIELD) == old

        speedups.renew_csrf_token()

        new = g.get(speedups.CSRF_FIELD)
        assert new != old
        assert speedups.CSRF_FIELD in session
        validate_csrf(new)
        with pytest.raises(ValidationError):
            validate_csrf(old)


async def test_dropped_csrf_token_is_replaced_by_a_new_one() -> None:
    app = bare_app()
    async with app.test_request_context("/"):
        old = generate_csrf()
        raw = session[speedups.CSRF_FIELD]

        speedups.drop_csrf_token()
        new = generate_csrf()

        assert new != old
        assert session[speedups.CSRF_FIELD] != raw


async def test_flashes_are_queued_where_quart_reads_them() -> None:
    app = bare_app()
    async with app.test_request_context("/"):
        await flash("You need to login first.", "warning")

        assert session[speedups.FLASHES] == [("warning", "You need to login first.")]
        assert get_flashed_messages(with_categories=True) == [
            ("warning", "You need to login first.")
        ]


async def test_ensure_async_asks_once_per_coroutine_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = bare_app()
    asked: list[object] = []
    real = quart_app.iscoroutinefunction

    def counting(func: object) -> bool:
        asked.append(func)
        return real(func)

    monkeypatch.setattr(quart_app, "iscoroutinefunction", counting)
    speedups.remember_coroutine_functions(app)

    async def hook() -> str:
        return "async"

    def sync_hook() -> str:
        return "sync"

    for _ in range(3):
        assert app.ensure_async(hook) is hook
    assert asked == [hook]
    # A sync function is still run in a thread, as Quart does, and asked about each time.
    for _ in range(2):
        assert await app.ensure_async(sync_hook)() == "sync"
    assert asked == [hook, sync_hook, sync_hook]


async def test_remembered_coroutine_functions_stay_bounded() -> None:
    app = bare_app()
    speedups.remember_coroutine_functions(app)
    for number in range(speedups.KNOWN_ASYNC + 10):

        async def hook(number: int = number) -> int:
            return number

        assert app.ensure_async(hook) is hook
    # Still answers correctly after the memory was emptied.
    assert await app.ensure_async(hook)() == speedups.KNOWN_ASYNC + 9


async def test_nav_links_are_kept_and_mark_the_current_page() -> None:
    app = bare_app()
    calls = counting_builder(app)
    speedups.cache_fixed_urls(app)
    page = "{{ nav_link('index', 'Home & away', current) }}"

    async with app.test_request_context("/"):
        here = [await render_template_string(page, current="index") for _ in range(2)]
        elsewhere = await render_template_string(page, current="other")
    async with app.test_request_context("/", root_path="/mounted"):
        mounted = await render_template_string(page, current=None)

    assert here == ['<a href="/" aria-current="page">Home &amp; away</a>'] * 2
    assert elsewhere == '<a href="/">Home &amp; away</a>'
    assert mounted == '<a href="/mounted/">Home &amp; away</a>'
    assert calls == ["index", "index"]  # once per root path
