"""A logged-in user's own pages: the ``account`` blueprint under ``/account``.

``views`` changes the password and lists, ends and trusts sessions (logins) and devices;
it also holds the display helpers its templates use (``browser_summary``,
``utc_minute``).
"""
