"""Browser tests' helpers: Chromium through pytest-playwright, a served app, axe-core.

A pytest plugin (``tests/conftest.py`` names it in ``pytest_plugins``) so that its
fixtures override pytest-playwright's and its summary hook runs:

- ``browser_type_launch_args`` uses Playwright's own Chromium where ``playwright
  install`` put it, and Debian's ``/usr/bin/chromium`` otherwise; with neither, every
  browser test skips and says how to install one.
- :func:`served` starts hypercorn on a copy of a database that holds one user, alice.
- :class:`Visitor` wraps a page: each :meth:`Visitor.check` screenshots the page at
  desktop and phone sizes (into :data:`SCREENSHOTS`) and asserts that axe-core finds
  no violations; console errors and uncaught exceptions (CSP violations included)
  fail the test when it ends.

A new page gets the same checks with one ``visitor.check("name")`` line. Browser tests
run after all others (see :func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.pg import INSTALL_HINT, PostgresServer, find_bin_dir, running_server
from tests.support.server import (
    CSRF_INPUT,
    INPUT_VALUE,
    ROOT,
    Server,
    development_env,
    free_port,
    hypercorn_command,
    running,
)
from tests.support.smtp import Received, RunningSink, smtp_sink

if TYPE_CHECKING:
    from axe_playwright_python.base import AxeResults
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        BrowserType,
        CDPSession,
        ConsoleMessage,
        Error,
        Page,
        Response,
        ViewportSize,
    )

# Where the screenshots go; `make test` prints it, and .gitignore keeps it out of git.
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
# A laptop, and a phone the size of an iPhone 12 to 15.
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
DEBIAN_CHROMIUM = "/usr/bin/chromium"
NO_CHROMIUM = "chromium is not installed: apt-get install chromium"
# The machine has no network: keep Chromium from trying to reach Google's services.
QUIET_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
# The screenshots this process took; each test's count goes into its teardown report
# (``user_properties``), so that under pytest-xdist the controller can sum the workers'.
TAKEN: list[Path] = []
SCREENSHOTS_PROPERTY = "screenshots"
# What the reports said, summed where the summary is written.
REPORTED: list[int] = []
_taken_before_test = [0]
# Chromium logs this for any document answered with a 4xx; the tests assert the status.
FAILED_RESOURCE = "Failed to load resource: the server responded with a status of"
# The address axe-core's script is compiled under: V8 reuses a compiled script of the
# same source and address in each new document (see Visitor._inject_axe).
AXE_SOURCE_URL = "quartapp-tests://axe.min.js"


def chromium_path(bundled: str) -> str | None:
    """The Chromium to drive: Playwright's own build if installed, else Debian's."""
    if bundled and Path(bundled).is_file():
        return None  # Playwright finds its own build without being told
    found = shutil.which("chromium") or (
        DEBIAN_CHROMIUM if Path(DEBIAN_CHROMIUM).is_file() else None
    )
    if found is None:
        pytest.skip(NO_CHROMIUM)
    return found


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at an installed Chromium."""
    args = dict(browser_type_launch_args)
    executable = chromium_path(browser_type.executable_path)
    if executable is not None:
        args["executable_path"] = executable
    extra = list(QUIET_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        extra.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    args["args"] = [*args.get("args", []), *extra]
    return args


# pytest-playwright's options that record a test's own context (traces, videos,
# screenshots on failure): with any on, each test gets a context of its own again.
RECORDING_OPTIONS = ("--tracing", "--video", "--screenshot")


class SharedPage:
    """One page in one browser context for the worker's tests, put back between them.

    A new context and page per test (pytest-playwright's ``page``) start a renderer
    process each: measured under load, 0.4 s and 0.18 CPU-seconds a test. Between
    tests the page goes to ``about:blank`` (the old document stops), and its cookies,
    permissions and viewport size go back to a new context's; the HTTP cache stays,
    which no test reads (the pages that must not be cached say ``no-store``).
    A test that leaves the page unusable gets a new one for the next.
    """

    def __init__(self, browser: Browser, context_args: dict[str, Any]) -> None:
        self.browser = browser
        self.context_args = context_args
        self.current: Page | None = None

    def take(self) -> Page:
        if self.current is None or self.current.is_closed():
            self.current = self.browser.new_context(**self.context_args).new_page()
        return self.current

    def put_back(self, page: Page, size: ViewportSize | None) -> None:
        try:
            page.goto("about:blank")
            page.context.clear_cookies()
            page.context.clear_permissions()
            if size is not None and page.viewport_size != size:
                page.set_viewport_size(size)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.current is not None:
            with suppress(Exception):  # a crashed page's context may be gone already
                self.current.context.close()
            self.current = None


@pytest.fixture(scope="session")
def shared_page(browser: Browser, browser_context_args: dict[str, Any]) -> Iterator[SharedPage]:
    """The worker's :class:`SharedPage`, in a context made as pytest-playwright makes
    one (the session's ``browser_context_args``)."""
    shared = SharedPage(browser, browser_context_args)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[Page]:
    """pytest-playwright's ``page``, but the worker's :class:`SharedPage` where nothing
    asks for a context of the test's own.

    A module that sets up its context otherwise (its own ``browser_context_args``) or
    changes the page beyond what :class:`SharedPage` puts back (a virtual
    authenticator, an init script) defines ``page`` as ``context.new_page()``; one
    that needs a permission grants it to ``page.context`` (put back after the test).
    """
    recording = any(
        pytestconfig.getoption(option, default="off") not in ("off", False, None)
        for option in RECORDING_OPTIONS
    )
    if recording or request.node.get_closest_marker("browser_context_args") is not None:
        context: BrowserContext = request.getfixturevalue("context")
        yield context.new_page()
        return
    shared: SharedPage = request.getfixturevalue("shared_page")
    taken = shared.take()
    size = taken.viewport_size
    try:
        yield taken
    finally:
        shared.put_back(taken, size)


@contextmanager
def served(
    directory: Path, template: Path, port: int | None = None, **settings: str
) -> Iterator[Server]:
    """A development hypercorn with ``alice``, on a copy of ``template`` in ``directory``.

    ``template`` is conftest's ``served_sqlite_template``: migrated, with alice in it.
    ``port``: one the caller took from ``free_port`` already, when a setting must name
    the server's own address (``QUARTAPP_BASE_URL``, for the links in its mail).
    """
    port = free_port() if port is None else port
    env = development_env(directory, **settings)
    shutil.copy(template, directory / "quartapp.db")
    with running(hypercorn_command(port), env, port, directory / "logs") as server:
        server.wait_healthy()
        yield server


@contextmanager
def served_with_mail(
    directory: Path, template: Path, smtp_port: int, **settings: str
) -> Iterator[Server]:
    """:func:`served`, sending its mail over SMTP to ``127.0.0.1:smtp_port``.

    Its port is taken first, so ``BASE_URL`` (the links in its mail) opens on this
    server; the sender runs in the web process, as in development by default.
    """
    port = free_port()
    with served(
        directory,
        template,
        port=port,
        QUARTAPP_MAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        QUARTAPP_BASE_URL=f"http://127.0.0.1:{port}",
        **settings,
    ) as started:
        yield started


# Tables a restore leaves alone: the schema's revision, and the counter the servers'
# login caches watch, which must only ever move on (quartapp/auth/login_cache.py).
NOT_RESTORED = ("alembic_version", "login_changes")


def database_path(server: Server) -> Path:
    """The SQLite file ``server`` serves from."""
    return Path(server.env["DATABASE_URL"].removeprefix("sqlite:///"))


def restore(server: Server, template: Path) -> None:
    """Put every table of ``server``'s SQLite file back as it is in ``template``.

    For a module's tests that change alice (her password, her logins, her passkeys) on
    one server: a restore between them costs milliseconds, a server of their own
    seconds. The server runs on meanwhile; deleting its logins' rows moves the counter
    its login cache watches, as any other ended login does, so it reads them afresh.
    """
    with closing(sqlite3.connect(database_path(server), timeout=10)) as connection:
        connection.execute("ATTACH DATABASE ? AS template", (str(template),))
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM template.sqlite_master "
                "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if name not in NOT_RESTORED
        ]
        with connection:  # one transaction: the server sees all of it or none
            for name in tables:
                connection.execute(f'DELETE FROM main."{name}"')
                connection.execute(f'INSERT INTO main."{name}" SELECT * FROM template."{name}"')


def send_login(visitor: Visitor, password: str = PASSWORD, name: str = USERNAME) -> None:
    """Fill and send the login form with the mouse, as most people do."""
    visitor.goto("/login")
    visitor.page.get_by_label("Username").fill(name)
    visitor.page.get_by_label("Password", exact=True).fill(password)
    # Exactly: where passkeys are on, another button says "Sign in with a passkey".
    visitor.page.get_by_role("button", name="Sign in", exact=True).click()


def log_in(visitor: Visitor, password: str = PASSWORD) -> None:
    """Sign alice in through the form (:func:`send_login`): she lands on /hello.

    ``wait_for_url`` fails the same way ``expect(page).to_have_url`` would, but hears
    the navigation at once, where ``expect`` polls (the first retry 0.1 s later, then
    0.25 s): a tenth of a second or more saved on each sign-in.
    """
    send_login(visitor, password)
    visitor.page.wait_for_url(visitor.base_url + "/hello")


def sign_in(visitor: Visitor, password: str = PASSWORD) -> None:
    """Sign alice in without driving the form, and open /hello, where :func:`log_in`
    leaves her: for tests about what comes after signing in.

    The login page and its post go through the page's own context
    (``context.request``: its cookies, its user agent), so the login is the browser's,
    as if it had sent the form; Chromium renders one page instead of two and fills no
    boxes. The form itself is tested through the keyboard, the mouse, without
    JavaScript and with its errors (tests/auth/test_browser.py).
    """
    http = visitor.page.context.request
    form = http.get(visitor.base_url + "/login")
    assert form.status == 200, form.status
    field = CSRF_INPUT.search(form.text())
    token = INPUT_VALUE.search(field.group(0)) if field else None
    assert token is not None, "no CSRF token on the login page"
    sent = http.post(
        visitor.base_url + "/login",
        form={
            "csrf_token": token.group(1),
            "username": USERNAME,
            "password": password,
            "submit": "Sign in",  # what the button sends
        },
        headers={"Origin": visitor.base_url, "Referer": visitor.base_url + "/login"},
        max_redirects=0,
    )
    assert sent.status == 302, f"the login was refused: {sent.status}"
    assert sent.headers["location"].endswith("/hello"), sent.headers["location"]
    visitor.goto("/hello")
    visitor.page.wait_for_url(visitor.base_url + "/hello")


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[RunningSink]:
    """The SMTP server :func:`mail_server` delivers to; a module empties it first."""
    with smtp_sink() as started:
        yield started


@pytest.fixture(scope="session")
def mail_server(
    tmp_path_factory: pytest.TempPathFactory,
    served_sqlite_template: Path,
    mail_sink: RunningSink,
) -> Iterator[Server]:
    """A development server with alice that sends its mail to :func:`mail_sink` and
    takes registrations, for the worker's mail and sign-up tests; each module restores
    its database (:func:`restore`) to what it starts from."""
    with served_with_mail(
        tmp_path_factory.mktemp("browser-mail-server"),
        served_sqlite_template,
        mail_sink.port,
        QUARTAPP_REGISTRATION_OPEN="true",
    ) as started:
        yield started


def wait_for_subject(sink: RunningSink, subject: str) -> Received:
    """The first message with ``subject`` the sink accepted, waiting for more until one
    comes (other notices may arrive before it); the sink's timeout bounds the wait."""
    count = 1
    while True:
        received = sink.sink.wait_for_blocking(count)
        for message in received:
            if message.message["Subject"] == subject:
                return message
        count = len(received) + 1


def snapshot(server: Server, target: Path) -> Path:
    """A consistent copy of ``server``'s SQLite file as it is now, for :func:`restore`."""
    with (
        closing(sqlite3.connect(database_path(server), timeout=10)) as source,
        closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
    return target


@dataclass
class Visitor:
    """A Playwright page on the test server, with the checks every page gets."""

    page: Page
    base_url: str
    test_name: str
    errors: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)
    # The DevTools session axe-core is loaded through (:meth:`_inject_axe`), once needed.
    _devtools: CDPSession | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("response", self._on_response)

    def detach(self) -> None:
        """Stop listening to the page, which the next test may reuse (:func:`page`)."""
        self.page.remove_listener("console", self._on_console)
        self.page.remove_listener("pageerror", self._on_page_error)
        self.page.remove_listener("response", self._on_response)
        if self._devtools is not None:
            self._devtools.detach()
            self._devtools = None

    def _on_page_error(self, error: Error) -> None:
        self.errors.append(f"pageerror: {error}")

    def _on_response(self, response: Response) -> None:
        if response.request.resource_type == "document":
            self.documents.add(response.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # A 4xx page is an expected answer, and each test asserts its status; a failed
        # stylesheet or script is not, and its URL is not a document's.
        location = message.location.get("url", "")
        if message.text.startswith(FAILED_RESOURCE) and location in self.documents:
            return
        self.errors.append(f"console: {message.text} ({location})")

    def goto(self, path: str) -> Response:
        response = self.page.goto(self.base_url + path)
        assert response is not None, f"no response for {path}"
        return response

    def path(self) -> str:
        """The current URL without the server's address."""
        return self.page.url.removeprefix(self.base_url)

    def check(self, name: str) -> None:
        """Screenshot the page at each size and assert axe-core finds no violations.

        The page is not reloaded between sizes: what is checked is the page as the
        test left it (errors shown, focus where it moved). axe-core is put into the
        document once, before the first size; a size the page already has is not set
        again.
        """
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        original = self.page.viewport_size
        current = original
        reports = []
        self._inject_axe()
        try:
            for label, (width, height) in VIEWPORTS.items():
                size: ViewportSize = {"width": width, "height": height}
                if current != size:
                    self.page.set_viewport_size(size)
                    current = size
                shot = SCREENSHOTS / f"{name}-{label}-{width}x{height}.png"
                self.page.screenshot(path=str(shot), full_page=True)
                TAKEN.append(shot)
                results = self._axe()
                if results.violations_count:
                    reports.append(f"{label}: {results.generate_report()}")
        finally:
            if original is not None and current != original:
                self.page.set_viewport_size(original)
        self.checked.append(name)
        assert not reports, f"axe-core found violations on {name}:\n" + "\n".join(reports)

    def _inject_axe(self) -> None:
        """Put axe-core into the page's document, unless it is there already.

        Compiled as a script of its own over the DevTools protocol rather than sent
        through ``page.evaluate`` (what the library's own ``Axe().run`` does on every
        call): V8 keeps compiled scripts by their source and address, so each new
        document reuses what the first one compiled, and axe-core's first run on it
        starts warmer too. Like ``page.evaluate``, it runs in the page's main world,
        where the page's Content Security Policy does not apply to it.
        """
        if self.page.evaluate("() => typeof window.axe === 'object'"):
            return
        from axe_playwright_python.base import AXE_SCRIPT

        if self._devtools is None:
            self._devtools = self.page.context.new_cdp_session(self.page)
            self._devtools.send("Runtime.enable")
        compiled = self._devtools.send(
            "Runtime.compileScript",
            {"expression": AXE_SCRIPT, "sourceURL": AXE_SOURCE_URL, "persistScript": True},
        )
        ran = self._devtools.send("Runtime.runScript", {"scriptId": compiled["scriptId"]})
        assert "exceptionDetails" not in ran, f"axe-core did not load: {ran}"

    def _axe(self) -> AxeResults:
        """axe-core's findings on the page (:meth:`_inject_axe` put it there)."""
        from axe_playwright_python.base import AxeResults
        from axe_playwright_python.sync_playwright import DEFAULT_OPTIONS

        return AxeResults(self.page.evaluate(f"axe.run({json.dumps(DEFAULT_OPTIONS)})"))

    def assert_no_errors(self) -> None:
        assert not self.errors, "the browser reported errors:\n" + "\n".join(self.errors)


def visit(page: Page, server: Server, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    """A :class:`Visitor` on ``server``; its console must stay clean to the end."""
    page.set_default_timeout(10_000)
    visitor = Visitor(page, server.base_url, request.node.name)
    try:
        yield visitor
    finally:
        visitor.detach()
    visitor.assert_no_errors()


@pytest.fixture(scope="session")
def development_server(
    tmp_path_factory: pytest.TempPathFactory, served_sqlite_template: Path
) -> Iterator[Server]:
    """One development server with ``alice`` for the worker's browser tests (see
    :func:`server`): its start is seconds, which each module paid again."""
    with served(tmp_path_factory.mktemp("browser-server"), served_sqlite_template) as started:
        yield started


@pytest.fixture(scope="module")
def server(development_server: Server, served_sqlite_template: Path) -> Server:
    """The development server with ``alice``, its database as the template has it when
    a module starts: another module's changes (alice's second factor, say) are gone.

    A module's tests share what they leave (a locked-out name, say); a module whose
    tests change alice (her password, her logins) restores it before each test.
    """
    restore(development_server, served_sqlite_template)
    return development_server


# The database settings of a server whose PostgreSQL is stopped under it: each request
# gives up after a second, so the outage pages come at once.
OUTAGE_SETTINGS = {
    "QUARTAPP_DATABASE_CONNECT_TIMEOUT": "1",
    "QUARTAPP_DATABASE_POOL_TIMEOUT": "1",
    "QUARTAPP_DATABASE_STATEMENT_TIMEOUT": "1",
}


@pytest.fixture(scope="session")
def stoppable_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL of the browser tests' own, to stop under a server and start again.

    Its ``postgres`` database is migrated and holds alice, once for the worker:
    ``initdb`` and the set-up are seconds that each outage test paid again. They are
    done in this process, as for the session's templates (``init-db`` and ``users
    create`` in processes of their own took seconds more; both are tested elsewhere).
    A test that stops it starts it again in its ``finally``. Not conftest's
    ``own_postgres``: that is a cluster per test, and it starts the session's
    PostgreSQL too, which these tests never use.
    """
    from tests.conftest import _add_alice, _migrate

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(INSTALL_HINT)
    with running_server(bin_dir) as server:
        directory = tmp_path_factory.mktemp("stoppable-postgres")
        _migrate(server.url(), directory)
        _add_alice(server.url(), directory)
        yield server


@pytest.fixture(scope="session")
def outage_server(
    stoppable_postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A development hypercorn on :func:`stoppable_postgres`, its requests quick to give
    up, for the worker's outage tests: each stops PostgreSQL under it and starts it again,
    after which it serves as before (what those tests check last)."""
    directory = tmp_path_factory.mktemp("outage-server")
    port = free_port()
    env = development_env(directory, **OUTAGE_SETTINGS)
    env["DATABASE_URL"] = stoppable_postgres.url()
    with running(hypercorn_command(port), env, port, directory / "logs") as server:
        server.wait_healthy()
        yield server


@pytest.fixture
def visitor(page: Page, server: Server, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    """A :class:`Visitor` on the module's ``server``."""
    yield from visit(page, server, request)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests after all others, keeping their order among themselves.

    Playwright's sync API holds an event loop open on the main thread for as long as
    pytest-playwright's session-wide ``playwright`` fixture lives; pytest-asyncio's
    tests cannot start their own loop while it does.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note how many screenshots were taken before this test."""
    _taken_before_test[0] = len(TAKEN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Put the test's count of screenshots into its teardown report."""
    try:
        return (yield)
    finally:
        taken = len(TAKEN) - _taken_before_test[0]
        if taken:
            item.user_properties.append((SCREENSHOTS_PROPERTY, taken))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Sum the screenshots of every test, this process's or a pytest-xdist worker's."""
    if report.when == "teardown":
        REPORTED.extend(
            value
            for name, value in report.user_properties
            if name == SCREENSHOTS_PROPERTY and isinstance(value, int)
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are, when this run took any."""
    taken = sum(REPORTED)
    if taken:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(
            f"{taken} screenshots of {taken // len(VIEWPORTS)} pages in "
            f"{SCREENSHOTS.relative_to(ROOT)}/"
        )
