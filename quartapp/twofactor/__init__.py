"""Second factors: TOTP with recovery codes.

- ``totp``: the key, its QR code, and accepting each code once;
- ``recovery``: the ten recovery codes, stored hashed, each usable once;
- ``misses``: wrong codes in a row, per user on every path, and the owner's list of them;
- ``views``: /account/two-factor, where a user turns TOTP on and off and makes new
  recovery codes;
- ``login``: /login/two-factor, the second step of a password login;
- ``confirm``: the code that /login/confirm asks for;
- ``flows``: turning TOTP off, and an admin's reset;
- ``overview``: its row of the account overview (on or off, recovery codes left);
- ``forms``: their forms.

:func:`init_app` plugs it in: its blueprints, and what it adds to signing in through
auth's registry (the password login's second step, the code ``/login/confirm`` asks
for, what ends with a user's logins or a browser's sign-out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart


def init_app(app: Quart) -> None:
    """Register the blueprints, and TOTP's parts of signing in with auth's registry."""
    from ..auth.registry import ConfirmStep, SecondStep, UserFilter, registry
    from . import confirm, export, login, misses, overview, totp, views

    app.register_blueprint(views.bp)
    app.register_blueprint(login.bp)
    hooks = registry(app)
    hooks.second_steps.append(
        SecondStep(
            required=login.required,
            begin=lambda checked, remember, next_url: login.begin(
                checked, remember=remember, next_url=next_url
            ),
        )
    )
    hooks.confirm_steps.append(
        ConfirmStep(asks=confirm.asks_code, check=confirm.confirm_code, method="password+code")
    )
    # A user with TOTP in force changes the password only after a strong proof.
    hooks.strong_factors.append(login.required)
    hooks.login_methods.update(
        {
            "password+totp": "Password and authenticator code",
            "password+recovery-code": "Password and recovery code",
        }
    )
    hooks.strong_methods.update({"password+totp", "password+recovery-code", "password+code"})
    hooks.logins_ending.extend([login.end_pending_logins, totp.end_pending_keys])
    hooks.signed_out.append(login.end_this_browsers)
    # A passkey is a factor the code guesser does not have: proving one gives TOTP codes
    # back to the owner.
    hooks.strong_proofs.append(misses.reset)
    hooks.exporters["two_factor"] = export.export
    hooks.overview_rows.append(overview.row)
    hooks.user_filters.append(
        UserFilter("totp", "Only users with two-factor authentication (TOTP) on.", totp.in_force)
    )
