"""Error pages: every error gets a page that fits the site, never a traceback."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

from quart import Quart, current_app, g, render_template, request, url_for
from quart.typing import ResponseReturnValue
from quart_wtf import const as wtf
from quart_wtf.csrf import CSRFError
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from .. import signals
from . import csrf
from .navigation import requested_path, safe_next

log = logging.getLogger("quartapp.errors")  # the pre-move name, kept for log filters
BUSY_LOG = "quartapp.errors.busy_log"
HOOKS = "quartapp.errors.hooks"


class Busy(Exception):
    """A queue of work is full (password hashing, ratings): the answer is a 503 with
    ``Retry-After: 1``. The message, if any, says which queue."""


class Refusal(Protocol):
    """A refused attempt (auth's ``LockedOut``): how long until the next one may come."""

    retry_after: int


@dataclass
class PageHooks:
    """What the signed-in features tell the error pages, kept in ``app.extensions``.

    ``identify`` finds who is signed in, for a page made before the app's hooks did
    (a failed CSRF check); ``unchecked_name`` is the name the session cookie claims when
    the login could not be checked (the database is away), so the page's header still
    offers that person their way out. The shell itself knows no feature.
    """

    identify: Callable[[], Awaitable[None]] | None = None
    unchecked_name: Callable[[], str | None] | None = None


def page_hooks(app: Quart) -> PageHooks:
    """The app's :class:`PageHooks` (made by :func:`init_app`)."""
    return cast(PageHooks, app.extensions[HOOKS])


class Throttled:
    """At most one log line a second for a kind of refusal; the rest are counted.

    A flood turned away by the hashing line's fair shares makes hundreds of 503s a
    second, each already in the access log: one line a second, saying how many it
    stands for, tells the operator as much without burying everything else.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.next = 0.0
        self.held = 0

    def due(self, now: float) -> int | None:
        """How many lines were held back since the last one, or None to hold this one."""
        if now < self.next:
            self.held += 1
            return None
        held, self.held, self.next = self.held, 0, now + self.interval
        return held


# Titles and messages by status; errors/<code>.html may word them its own way, and a
# status without a template uses errors/error.html.
PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Please try again."),
    403: ("Forbidden", "You are not allowed to do that."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Method not allowed", "This page does not accept that kind of request."),
    413: ("Request too large", "What you sent is larger than this site accepts."),
    415: ("Unsupported form", "Please submit the form from this site's page."),
    429: ("Too many attempts", "There have been too many requests."),
    500: ("Something went wrong", "Something went wrong on our side. Please try again."),
    503: (
        "Temporarily unavailable",
        "The site cannot answer right now. Please try again in a few seconds.",
    ),
}
# Seconds a client should wait before retrying after a 503.
RETRY_AFTER = 5
# Driver errors that mean the database is away, full or too slow, not that our SQL is
# wrong: those get the 503 page, the others are bugs and get the 500 page.
SQL_BUGS = (IntegrityError, ProgrammingError, DataError, NotSupportedError)
# What makes a 503 (:func:`handle_unavailable`).
UNAVAILABLE: tuple[type[Exception], ...] = (
    DBAPIError,
    SQLAlchemyTimeoutError,
    OSError,
    TimeoutError,
    Busy,
)


@dataclass(frozen=True)
class FormRefusal:
    """What a refused form post says: its status, the page's title and message, and the
    shorter words the login form shows above itself when it comes back."""

    status: int
    title: str
    message: str
    short: str


# Other forms than the login form (logout) cannot be re-filled; say what happened.
CSRF_OTHER_MESSAGE = (
    "The form expired before it was sent, so nothing was done. Please open it again."
)
NOT_VERIFIED = "Form not verified"
FORM_EXPIRED = FormRefusal(
    400, "Form expired", CSRF_OTHER_MESSAGE, "The form expired. Please try again."
)
FROM_ANOTHER_SITE = FormRefusal(
    403,
    "Request from another site",
    "This request came from another site, so nothing was done. To do this, open the "
    "form on this site and send it from there.",
    "This request came from another site, so it was refused. Sign in on this page instead.",
)
NO_SOURCE = FormRefusal(
    400,
    NOT_VERIFIED,
    "The form could not be verified: your browser did not say which page sent it (a "
    "privacy setting or extension can hide that), so nothing was done. Allow this site "
    "to send the Referer or Origin header, then open the form again.",
    "The form could not be verified: your browser did not say which page sent it. Allow "
    "this site to send the Referer or Origin header, then try again.",
)
NO_COOKIE = FormRefusal(
    400,
    NOT_VERIFIED,
    "The form could not be verified because this browser sent no cookie for this site, "
    "so nothing was done. Open the form again; if this keeps happening, allow cookies "
    "for this site.",
    "The form could not be verified because this browser sent no cookie for this site. "
    "Please try again; if this keeps happening, allow cookies for this site.",
)
UNVERIFIED = FormRefusal(
    400,
    NOT_VERIFIED,
    "The form could not be verified, so nothing was done. Please open it again.",
    "The form could not be verified. Please try again.",
)
# By the CSRF check's reason (CSRFError.description): Quart-WTF's own for the token and
# its Referer rule, web.security's for where an HTTPS post came from. A token missing
# from the form, made for another session or under an old key is not "expired": saying
# so would have the person retry what can never work.
FORM_REFUSALS = {
    wtf.TOKEN_EXPIRED: FORM_EXPIRED,
    csrf.CROSS_SITE: FROM_ANOTHER_SITE,
    wtf.REFERRER_HOST: FROM_ANOTHER_SITE,
    csrf.NO_SOURCE: NO_SOURCE,
    wtf.REFERRER_HEADER: NO_SOURCE,
    wtf.SESSION_TOKEN_MISSING: NO_COOKIE,
}


def form_refusal(error: CSRFError) -> FormRefusal:
    """What to tell the person whose post ``error`` refused (by its cause)."""
    return FORM_REFUSALS.get(str(error.description), UNVERIFIED)


FALLBACK_500 = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Something went wrong</title>"
    '<link rel=stylesheet href="/static/style.css"><main><h1>Something went wrong</h1>'
    "<p>Something went wrong on our side. Please try again.</p>"
    '<p><a href="/">Go to the home page</a></p></main></html>'
)


async def render_error(code: int, template: str | None = None, **context: object) -> str:
    """Render the page for ``code``, falling back to the generic one."""
    title, message = PAGES.get(code, ("Error", "The request could not be completed."))
    context = {"code": code, "title": title, "message": message, "back_url": None, **context}
    names = [template] if template else [f"errors/{code}.html", "errors/error.html"]
    return await render_template(names, **context)


def wait_in_words(seconds: int) -> str:
    """How long ``Retry-After: seconds`` is, as a person says it: "in 15 minutes".

    Seconds up to a minute, then whole minutes and hours, always rounded up: telling
    someone to come back before the lockout ends would only lock them out again.
    """
    seconds = max(1, seconds)
    if seconds <= 60:
        amount, unit = seconds, "second"
    elif seconds <= 3600:
        amount, unit = math.ceil(seconds / 60), "minute"
    else:
        amount, unit = math.ceil(seconds / 3600), "hour"
    return f"in {amount} {unit}{'' if amount == 1 else 's'}"


async def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """Any 4xx/5xx raised by a view, a before_request hook or routing."""
    code = error.code or 500
    response = await render_error(code, None)
    # Keep what the error says about itself (Allow, Retry-After); the page sets its own type.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return response, code, headers


# Blueprints handle LockedOut and the
# unavailable errors themselves where their forms need other words; these are the
# app's defaults, and the helpers those handlers call.
async def lockout_page(error: Refusal, **context: object) -> ResponseReturnValue:
    """The 429 page for a refused attempt: how long to wait, plus ``context`` (a
    ``message``, a ``hint``, ``back_url`` and ``back_text``) from the blueprint."""
    page = await render_error(429, None, wait=wait_in_words(error.retry_after), **context)
    return page, 429, {"Retry-After": str(error.retry_after)}


async def note_csrf_error(error: CSRFError) -> None:
    """Log a failed CSRF check, and find who is logged in for the page's header."""
    log.info("CSRF check failed on %s %s: %s", request.method, request.path, error.description)
    identify = page_hooks(current_app).identify
    if "user" not in g and identify is not None:
        # CSRFProtect runs before auth's hook sets g.user; without it the header of a
        # failed logout would say "Sign in" to someone who is still signed in.
        await identify()


async def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    """A post from another site, or with a missing, wrong or expired CSRF token: say
    which, and offer the form again."""
    await note_csrf_error(error)
    refusal = form_refusal(error)
    back = safe_next(requested_path()) or url_for("pages.home")
    page = await render_error(
        refusal.status,
        "errors/csrf.html",
        title=refusal.title,
        message=refusal.message,
        back_url=back,
        back_text="Open the form again",
    )
    return page, refusal.status


async def handle_unexpected(error: Exception) -> ResponseReturnValue:
    """A bug, including one inside another error handler: log it, show the 500 page."""
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
    try:
        return await render_error(500), 500
    except Exception:
        # The templates themselves failed (a broken template, a failing context
        # processor): fall back to a page that needs nothing but this string.
        log.exception("the 500 page could not be rendered")
        return FALLBACK_500, 500, {"Content-Type": "text/html; charset=utf-8"}


async def handle_unavailable(error: Exception) -> ResponseReturnValue:
    """The database refused, timed out or ran out of connections; or hashing is full.

    One log line per failure, not a traceback: an outage must not bury the log. The
    app needs no restart afterwards; the pool reconnects on the next request.
    """
    headers = note_unavailable(error)
    if headers is None:
        return await handle_unexpected(error)
    back = safe_next(requested_path())
    back_text = "Back to the form" if request.method == "POST" else "Try again"
    return await render_error(503, back_url=back, back_text=back_text), 503, headers


def note_unavailable(error: Exception) -> dict[str, str] | None:
    """Count and log an unavailable error; its 503's headers, or None for a bug.

    A blueprint's own handler (``auth.errors``) calls this before its own page.
    """
    if isinstance(error, Busy):
        signals.send(signals.queue_full, endpoint=request.endpoint)
    else:
        signals.send(signals.database_failed)
    if isinstance(error, DBAPIError) and isinstance(error, SQL_BUGS):
        return None
    if isinstance(error, Busy):
        # A Busy says which queue is full (the rating queue's does); bare, it is hashing's.
        queue = str(error) or "the password hashing queue is full"
        held = current_app.extensions[BUSY_LOG].due(time.monotonic())
        if held is not None:
            more = f" ({held} more since the last such line)" if held else ""
            log.warning("503 on %s %s: %s%s", request.method, request.path, queue, more)
        retry = 1
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning(
            "503 on %s %s: database unavailable: %s: %s",
            request.method,
            request.path,
            type(error).__name__,
            reason[:200],
        )
        retry = RETRY_AFTER
    headers = {"Retry-After": str(retry)}
    unchecked = page_hooks(current_app).unchecked_name
    name = unchecked() if unchecked is not None and g.get("user") is None else None
    if name is not None:
        # The login could not be checked: the header still shows who the cookie
        # says is signed in (and their way out), not "Sign in".
        g.unchecked_login = name
    return headers


def init_app(app: Quart) -> None:
    """Register the handlers; the CSRF one first, as CSRFError is also a 400."""
    app.extensions[BUSY_LOG] = Throttled()
    app.extensions[HOOKS] = PageHooks()
    for unavailable in UNAVAILABLE:
        app.register_error_handler(unavailable, handle_unavailable)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
