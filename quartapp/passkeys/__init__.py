"""Passkeys: WebAuthn credentials that sign in with no password (py_webauthn).

- ``ceremony``: options out and responses checked, with no database or request;
- ``store``: the credentials and challenges in the database;
- ``answers``: the JSON that static/passkeys.js and the endpoints exchange;
- ``views``: the account's passkey pages (``/account/passkeys``);
- ``signin``: signing in with a passkey, and confirming a login with one.
"""
