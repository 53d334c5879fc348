"""The HTTP shell around the features: what every request passes through.

``security`` (trusted hosts, proxy fix, security headers), ``logs`` (the access log),
``errors`` (every error page), ``messages`` (bounded flashes), ``sessions`` (the
signed session cookie), ``health`` (``/healthz``) and ``pages`` (the public pages
blueprint: ``/``, ``/welcome``, ``/hello``).
"""
