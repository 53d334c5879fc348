"""Form views: the one place a view gets its typed form, and refuses a body no page sends.

Every page of ours posts ``application/x-www-form-urlencoded`` (or multipart); a POST of
JSON or plain text to a form view is a client of its own, and gets a 415 before any
form is built. :func:`form_post` does both for a view, in one decorator::

    @bp.route("/account/password", methods=["GET", "POST"])
    @login_required
    @form_post(ChangePasswordForm)
    async def password(form: ChangePasswordForm) -> ResponseReturnValue: ...

It goes under ``login_required`` (an anonymous visitor is sent to sign in first) and
passes the form as the view's first argument, typed as the class it was given.

:class:`ConfirmForm` is the one form of every confirmation step (ending logins, turning
two-factor off, removing a passkey, new recovery codes): the page's CSRF token and
nothing else; each page words its own button (``_macros.html``'s ``confirm``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar, cast

from quart import abort, current_app, request
from quart.typing import ResponseReturnValue
from quart_wtf import QuartForm

P = ParamSpec("P")
F = TypeVar("F", bound=QuartForm)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class ConfirmForm(QuartForm):
    """A confirmation: the CSRF token from the page that asked, and a button."""


def is_form_post() -> bool:
    """Whether this request is a POST with a form body, as our pages send."""
    return request.method == "POST" and request.mimetype in FORM_TYPES


async def make_form(form_class: type[F]) -> F:
    """This request's ``form_class``; 415 for a POST whose body is not a form."""
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        abort(415)
    # QuartForm.create_form is typed as returning QuartForm; it returns form_class.
    return cast(F, await form_class.create_form())


def form_post(
    form_class: type[F],
) -> Callable[
    [Callable[Concatenate[F, P], Awaitable[ResponseReturnValue]]],
    Callable[P, Awaitable[ResponseReturnValue]],
]:
    """Give the view its form (see the module docstring); 415 for a non-form POST."""

    def decorate(
        view: Callable[Concatenate[F, P], Awaitable[ResponseReturnValue]],
    ) -> Callable[P, Awaitable[ResponseReturnValue]]:
        @wraps(view)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            form = await make_form(form_class)
            return await current_app.ensure_async(view)(form, *args, **kwargs)

        return wrapper

    return decorate
