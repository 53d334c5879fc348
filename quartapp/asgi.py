"""The ASGI entry that ``hypercorn quartapp:app`` serves, built on first use.

Importing this module imports no framework: the app is made by :func:`quartapp.create_app`
when hypercorn first calls ``app`` (at lifespan startup), so ``import quartapp`` stays
cheap for the tools that only need a corner of the package (``python -m quartapp.keys``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
    from quart import Quart

__all__ = ["LazyApp", "app", "keep_serving_on_sigterm"]


class LazyApp:
    """The ASGI app behind ``hypercorn quartapp:app``, built on first use.

    hypercorn reads ``app`` straight out of the module, so it must exist at import; but
    building it reads the environment and files, which importing ``create_app`` in tests
    must not do. So ``app`` is this small stand-in, and the real app is made when
    hypercorn first calls it (at lifespan startup) or when an attribute is read.
    """

    def __init__(self) -> None:
        self._app: Quart | None = None

    def load(self) -> Quart:
        """The real app, created once."""
        if self._app is None:
            from . import create_app

            self._app = create_app()
        return self._app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            keep_serving_on_sigterm()
        real = self._app
        if real is None:
            from .settings import ConfigError

            try:
                real = self.load()
            except ConfigError as error:
                # Refuse to start with one line naming the fix, and tell hypercorn the
                # startup failed so it exits instead of serving without the app.
                print(f"quartapp: refusing to start: {error.message}", file=sys.stderr)
                if scope["type"] == "lifespan":
                    await receive()
                    await send({"type": "lifespan.startup.failed", "message": error.message})
                    return
                raise
        await real(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        # hypercorn probes the app with inspect (``__name__``, ``__code__``...) when it
        # imports it; building the app for those would raise a config error there, as a
        # traceback, instead of as the one-line lifespan failure above.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def keep_serving_on_sigterm() -> None:
    """In a hypercorn worker process, leave SIGTERM to hypercorn's parent process.

    A PaaS stops a dyno by sending SIGTERM to every process in it. hypercorn's parent
    turns its copy into a graceful shutdown of all workers (``--graceful-timeout``), but
    a worker that dies of its own copy drops the logins it is serving. With workers=0
    there is no parent, hypercorn handles the signal itself, and nothing is changed.
    """
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


app = LazyApp()
