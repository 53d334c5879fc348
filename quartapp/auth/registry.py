"""What other features plug into signing in: the registries auth keeps in ``app.extensions``.

``auth`` knows no feature by name. A feature that adds to signing in (a second factor,
a way to confirm a login, a table to prune, a thing that must end with a login) registers
it here from its own ``init_app``; auth asks the registry, never a module-level list
filled at import, so what a login requires depends on which features the app was built
with, not on what happened to be imported.

- ``second_steps``: what a right password may still need before it is a login (TOTP);
- ``confirm_steps``: what ``/login/confirm`` asks for on top of the password;
- ``strong_factors``: whether a user has a factor beyond the password (TOTP, a passkey),
  for :func:`~quartapp.auth.reauth.strong_login_required`;
- ``login_methods``: the ways a login may be made, and how the sessions page names them;
  ``strong_methods``: those (and confirmations) that prove a factor beyond the password;
- ``logins_ending``: work done in the transaction that ends a user's logins (or one);
- ``signed_out``: work done in the request of a browser that signs out, while its
  session cookie still says what it holds;
- ``strong_proofs``: work done in the transaction of a proof with a factor beyond the
  password (a passkey);
- ``pruners``: tables the background prune and ``db prune`` keep small;
- ``password_changing``: work done in the transaction that sets a new password;
- ``account_deleting``: work done in the transaction that deletes an account, before
  its row goes (a feature deletes what is its own, or writes a last message);
- ``exporters``: each feature's part of a person's data export, by its key in the
  download;
- ``user_options``, ``user_commands``, ``user_columns``, ``user_filters``: what features
  add to the ``users`` command group (an option of ``users create``, a command, a column
  or a filter flag of ``users list``), which the CLI builds per app;
- ``login_gates``: what a new login must still do before ``login_required`` pages
  let it in (decided when the login starts);
- ``login_links``, ``account_links``: links under the sign-in form and on the account
  page (the templates' ``login_links`` and ``account_links``);
- ``overview_rows``: the rows of the account's overview (``/account``), each a status
  and a link, in the order of their ``order``: the password (10), two-factor (20),
  passkeys (30), the email address (40), sessions (50), trusted devices (60), recent
  security activity (70);
- ``login_gates``: what a login must still do before ``login_required`` pages let it in
  (confirm its address), decided when the login starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from quart import current_app
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    import click
    from flask.sansio.app import App
    from werkzeug.wrappers import Response as WerkzeugResponse

    from .credentials import Checked
    from .forms import ConfirmForm
    from .passwords import Passwords
    from .settings import AuthSettings

EXTENSION = "quartapp.auth"


@dataclass(frozen=True)
class SecondStep:
    """A factor a password login may still need after a right password.

    ``required(user_id)`` says whether this user needs it; ``begin(checked, remember,
    next_url)`` answers the password form instead of logging in (it sends the browser on
    to the step's own page).
    """

    required: Callable[[int], Awaitable[bool]]
    begin: Callable[[Checked, bool, str | None], Awaitable[WerkzeugResponse]]


@dataclass(frozen=True)
class ConfirmStep:
    """What ``/login/confirm`` asks for beyond the password, for the users who have it.

    ``asks(user_id)`` says whether the page shows the code field to this user;
    ``check(form, user_id)`` returns an error for the form, or None when its part was
    right (or the user has no such factor). ``method`` is how a confirmation through it
    is recorded on the login (``logins.verified_method``).
    """

    asks: Callable[[int], Awaitable[bool]]
    check: Callable[[ConfirmForm, int], Awaitable[str | None]]
    method: str


# (session, user_id, login_id): login_id None when all of the user's logins end.
LoginsEnding = Callable[[AsyncSession, int, str | None], Awaitable[None]]
# Run in the request of a browser that signs out, before its session cookie is cleared.
SignedOut = Callable[[], Awaitable[None]]
# (session, user_id): the user just proved a factor beyond the password.
StrongProof = Callable[[AsyncSession, int], Awaitable[None]]
# (session, config, batch): deletes up to ``batch`` stale rows of one table; how many.
Pruner = Callable[[AsyncSession, Any, int], Awaitable[int]]
# (session, user_id): the user's password is being replaced, in this transaction.
PasswordChanging = Callable[[AsyncSession, int], Awaitable[None]]
# (session, user_id, username, by): the account is being deleted, in this transaction;
# ``by`` is who asked, "user" (its owner, on the account page) or "admin" (the CLI).
AccountDeleting = Callable[[AsyncSession, int, str, str], Awaitable[None]]
# (session, user_id): what a feature stores about the user, as JSON-ready values.
Exporter = Callable[[AsyncSession, int], Awaitable[Any]]
# What a ``users`` command's work gets: the session, the hasher, the settings and the
# command's parsed parameters by name.
CommandWork = Callable[
    [AsyncSession, "Passwords", "AuthSettings", Mapping[str, Any]], Awaitable[str]
]


@dataclass(frozen=True)
class UserOption:
    """Options a feature adds to ``users create``, and what it does with them.

    ``check(session, config, values)`` runs before the password is asked for and raises
    :class:`~.users.AccountError` (one ``Error:`` line, exit 1) to refuse; ``apply(session,
    config, user_id, values)`` runs once the user exists and returns a line to print, or
    None. ``values`` are the command's parsed parameters by name.
    """

    params: Sequence[click.Parameter]
    check: Callable[[AsyncSession, AuthSettings, Mapping[str, Any]], Awaitable[None]]
    apply: Callable[[AsyncSession, AuthSettings, int, Mapping[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True)
class UserCommand:
    """A ``users`` subcommand of a feature's: ``work`` returns the line to print and
    raises :class:`~.users.AccountError` to refuse (one ``Error:`` line, exit 1)."""

    name: str
    help: str
    params: Sequence[click.Parameter]
    work: CommandWork


# (session, user ids): the column's text for each of those users (missing: empty).
UserColumn = Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, str]]]


@dataclass(frozen=True)
class LoginGate:
    """What a login must still do before ``login_required`` pages let it in.

    ``holds(session, user_id)`` is asked once, in the transaction that starts a login;
    a login it holds is sent to ``endpoint`` by every ``login_required`` page (the
    session cookie says so, so a page view costs no query), until the feature's own
    page lets it go (:func:`~.signin.release_login`).
    """

    holds: Callable[[AsyncSession, int], Awaitable[bool]]
    endpoint: str


@dataclass(frozen=True)
class UserFilter:
    """A flag of ``users list`` that keeps only some users: ``name`` is the flag's
    parameter name (``--totp`` is ``totp``), ``keep(session, user_ids)`` says which of
    those users it keeps. Given several flags, a user must pass them all."""

    name: str
    help: str
    keep: Callable[[AsyncSession, Sequence[int]], Awaitable[set[int]]]


@dataclass(frozen=True)
class OverviewItem:
    """One line of an overview row's list (a security event): what, when (UTC, to the
    minute), from which browser and address ("" when there is none to show)."""

    text: str
    at: datetime
    address: str
    browser: str


@dataclass(frozen=True)
class OverviewRow:
    """One row of the account overview: a title, the account's status in words, and a
    link (``endpoint``, ``action``: "Change" or "Manage"; none when there is nothing to
    do). A row with ``items`` (recent security activity) lists them under its status.
    Rows are shown by ``order``, lowest first."""

    order: int
    title: str
    status: str
    endpoint: str | None = None
    action: str = "Manage"
    items: Sequence[OverviewItem] | None = None


# (session, user_id): the feature's row of this user's overview, or None for no row.
OverviewRowSource = Callable[[AsyncSession, int], Awaitable[OverviewRow | None]]


@dataclass
class Registry:
    """Everything features have registered with auth (see the module docstring)."""

    second_steps: list[SecondStep] = field(default_factory=list)
    confirm_steps: list[ConfirmStep] = field(default_factory=list)
    strong_factors: list[Callable[[int], Awaitable[bool]]] = field(default_factory=list)
    login_methods: dict[str, str] = field(default_factory=lambda: {"password": "Password"})
    # Login methods and confirmations that prove a factor beyond the password.
    strong_methods: set[str] = field(default_factory=set)
    logins_ending: list[LoginsEnding] = field(default_factory=list)
    signed_out: list[SignedOut] = field(default_factory=list)
    strong_proofs: list[StrongProof] = field(default_factory=list)
    pruners: dict[str, Pruner] = field(default_factory=dict)
    password_changing: list[PasswordChanging] = field(default_factory=list)
    account_deleting: list[AccountDeleting] = field(default_factory=list)
    exporters: dict[str, Exporter] = field(default_factory=dict)
    user_options: list[UserOption] = field(default_factory=list)
    user_commands: list[UserCommand] = field(default_factory=list)
    user_columns: list[UserColumn] = field(default_factory=list)
    user_filters: list[UserFilter] = field(default_factory=list)
    login_gates: list[LoginGate] = field(default_factory=list)
    # (endpoint, text): links features add under the sign-in form and on the account page.
    login_links: list[tuple[str, str]] = field(default_factory=list)
    account_links: list[tuple[str, str]] = field(default_factory=list)
    overview_rows: list[OverviewRowSource] = field(default_factory=list)


def registry(app: App | None = None) -> Registry:
    """The registry of ``app`` (the current app by default), made on first use."""
    target = app if app is not None else current_app
    found = target.extensions.get(EXTENSION)
    if found is None:
        found = target.extensions[EXTENSION] = Registry()
    return cast(Registry, found)


async def logins_ending(session: AsyncSession, user_id: int, login_id: str | None) -> None:
    """Run every feature's work for logins that end, in the caller's transaction."""
    for hook in registry().logins_ending:
        await hook(session, user_id, login_id)


async def password_changing(session: AsyncSession, user_id: int) -> None:
    """Run every feature's work for a new password, in the caller's transaction."""
    for hook in registry().password_changing:
        await hook(session, user_id)


async def account_deleting(session: AsyncSession, user_id: int, username: str, by: str) -> None:
    """Run every feature's work for an account being deleted, in the caller's transaction."""
    for hook in registry().account_deleting:
        await hook(session, user_id, username, by)


async def strong_proof(session: AsyncSession, user_id: int) -> None:
    """Run every feature's work for a proof beyond the password, in the caller's transaction."""
    for hook in registry().strong_proofs:
        await hook(session, user_id)


async def overview_rows(session: AsyncSession, user_id: int) -> list[OverviewRow]:
    """Every feature's row of the user's overview, in order."""
    rows = [
        row
        for source in registry().overview_rows
        if (row := await source(session, user_id)) is not None
    ]
    return sorted(rows, key=lambda row: row.order)


async def has_strong_factor(user_id: int) -> bool:
    """Whether the user has a factor beyond the password (TOTP in force, a passkey...)."""
    for check in registry().strong_factors:
        if await check(user_id):
            return True
    return False
