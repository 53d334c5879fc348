"""The HTTP shell around the features: what every request passes through.

- ``security``: trusted hosts, the proxy fix and security headers;
- ``logs``: the access log, and log lines that stay on their line;
- ``errors``: every error page;
- ``messages``: flashed messages, bounded;
- ``sessions``: the signed session cookie, re-signed during a key rotation;
- ``speedups``: every patch to Quart, Quart-WTF or itsdangerous internals, each with
  the upstream change that would remove it;
- ``pages`` (the ``pages`` blueprint: ``/``, ``/welcome``, ``/hello``) and ``health``
  (``/healthz``).
"""
