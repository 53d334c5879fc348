"""Flashed messages: each waits once, and only the newest few wait at all."""

from __future__ import annotations

from quart import Quart, session

from quartapp.web.messages import MAX_WAITING, flash


def waiting() -> list[tuple[str, ...]]:
    return [tuple(entry) for entry in session.get("_flashes", [])]


async def test_same_message_waits_once(app: Quart) -> None:
    async with app.test_request_context("/"):
        await flash("You need to login first.", "warning")
        await flash("You need to login first.", "warning")

        assert waiting() == [("warning", "You need to login first.")]


async def test_same_text_in_another_category_waits_separately(app: Quart) -> None:
    async with app.test_request_context("/"):
        await flash("Hello", "info")
        await flash("Hello", "warning")

        assert waiting() == [("info", "Hello"), ("warning", "Hello")]


async def test_repeated_message_moves_to_the_end(app: Quart) -> None:
    async with app.test_request_context("/"):
        await flash("first", "info")
        await flash("second", "info")
        await flash("first", "info")

        assert waiting() == [("info", "second"), ("info", "first")]


async def test_only_the_newest_messages_wait(app: Quart) -> None:
    async with app.test_request_context("/"):
        for number in range(MAX_WAITING + 3):
            await flash(f"message {number}", "info")

        assert waiting() == [("info", f"message {n}") for n in range(3, MAX_WAITING + 3)]


async def test_message_stored_as_a_list_counts_as_the_same(app: Quart) -> None:
    # A session read back from some serializers holds lists, not tuples.
    async with app.test_request_context("/"):
        session["_flashes"] = [["info", "Hello"]]
        await flash("Hello", "info")

        assert waiting() == [("info", "Hello")]


async def test_default_category_is_message(app: Quart) -> None:
    async with app.test_request_context("/"):
        await flash("Hello")

        assert waiting() == [("message", "Hello")]
