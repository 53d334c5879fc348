"""A logged-in user's own pages: the ``account`` blueprint under ``/account``.

- ``views``: change the password; list, end and trust sessions (logins) and devices;
- ``forms``: their forms;
- ``display``: how a login is shown (``browser_summary``, ``utc_minute``).
"""
