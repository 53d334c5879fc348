"""Who is logged in: everything between a password and ``g.user``.

- ``views``: the ``auth`` blueprint (``/login``, ``/login/device``, ``/logout``),
  ``login_required`` and the per-request ``load_logged_in_user``; ``errors``, its
  forms' own 429, 503 and expired-form answers;
- ``reauth``: ``fresh_login_required`` and ``/login/confirm``, before a factor changes;
- ``logins`` (the login record: one row per logged-in browser), ``login_cache`` and
  ``login_listener`` (its per-process cache, kept fresh on PostgreSQL by NOTIFY);
- ``credentials`` (checking a username and password, throttled), ``throttle``,
  ``devices`` (trusted-device cookies and codes), ``passwords`` (argon2 off the event
  loop), ``ratings`` (zxcvbn, bounded), ``users`` (user records and the password
  policy), ``forms`` and ``prune`` (deleting expired logins and stale counters).

Second factors (``quartapp.twofactor``) and passkeys (``quartapp.passkeys``) are
packages of their own that end in this one: a login record, through ``logins.start``.
"""
