"""Error pages: every error gets a page that fits the site, never a traceback."""

from __future__ import annotations

import logging

from quart import Quart, render_template, request, url_for
from quart.typing import ResponseReturnValue
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

from .auth import requested_path, safe_next
from .passwords import Busy

log = logging.getLogger(__name__)

# Titles and messages by status; errors/<code>.html may word them its own way, and a
# status without a template uses errors/error.html.
PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Please try again."),
    403: ("Forbidden", "You are not allowed to do that."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Method not allowed", "This page does not accept that kind of request."),
    413: ("Request too large", "What you sent is larger than this site accepts."),
    415: ("Unsupported form", "Please submit the form from this site's page."),
    429: ("Too many attempts", "Too many attempts. Please wait a moment and try again."),
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
CSRF_MESSAGE = "The form expired, please try again."
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


async def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """Any 4xx/5xx raised by a view, a before_request hook or routing."""
    code = error.code or 500
    response = await render_error(code)
    # Keep what the error says about itself (Allow, Retry-After); the page sets its own type.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return response, code, headers


async def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    """A missing, wrong or expired CSRF token: explain and offer the form again."""
    log.info("CSRF check failed on %s %s: %s", request.method, request.path, error.description)
    back = safe_next(requested_path()) or url_for("pages.home")
    page = await render_error(400, "errors/csrf.html", message=CSRF_MESSAGE, back_url=back)
    return page, 400


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
    if isinstance(error, DBAPIError) and isinstance(error, SQL_BUGS):
        return await handle_unexpected(error)
    if isinstance(error, Busy):
        log.warning(
            "503 on %s %s: the password hashing queue is full", request.method, request.path
        )
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
    return await render_error(503), 503, {"Retry-After": str(retry)}


def init_app(app: Quart) -> None:
    """Register the handlers; the CSRF one first, as CSRFError is also a 400."""
    for unavailable in (DBAPIError, SQLAlchemyTimeoutError, OSError, TimeoutError, Busy):
        app.register_error_handler(unavailable, handle_unavailable)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
