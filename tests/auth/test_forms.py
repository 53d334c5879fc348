"""The login form's own validators: SentOnce and PlainText."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from quart.datastructures import FileStorage
from werkzeug.datastructures import MultiDict
from wtforms import Form, StringField
from wtforms.validators import Length

from quartapp import create_app
from quartapp.auth.forms import PlainText, SentOnce
from tests.conftest import AuthActions, add_user, settings_at_head

NOT_ALLOWED = "This field contains characters that are not allowed."


class Probe(Form):
    """One field per validator setting, with nothing else in the way."""

    once = StringField(validators=[SentOnce()])
    plain = StringField(validators=[PlainText(), Length(max=64)])
    spaced = StringField(validators=[PlainText(allow_whitespace=True)])


def errors(field: str, *values: object) -> list[str]:
    """The errors ``field`` gets when the request carries ``values`` for it."""
    form = Probe(MultiDict([(field, value) for value in values]))
    form.validate()
    return list(form[field].errors)


@pytest.mark.parametrize("values", [(), ("alice",), ("",)])
def test_sent_once_accepts_a_single_or_missing_value(values: tuple[str, ...]) -> None:
    assert errors("once", *values) == []


@pytest.mark.parametrize("values", [("a", "a"), ("a", "b"), ("", ""), ("a", "b", "c")])
def test_sent_once_refuses_a_repeated_field(values: tuple[str, ...]) -> None:
    assert errors("once", *values) == ["Send this field only once."]


@pytest.mark.parametrize(
    "value",
    [
        "alice",
        "O'Brien-Smith",
        "two words",
        "\u017c\u00f3\u0142w",
        "\u540d\u524d",
        "\U0001f642",
        "\xa0",
        "",
    ],
)
def test_plain_text_accepts_printable_text(value: str) -> None:
    assert errors("plain", value) == []


@pytest.mark.parametrize(
    "value",
    ["\x00", "a\x00b", "\x1f", "\x1b[31m", "\x7f", "\x85", "\x9f", "\n", "\r\n", "\t", "\ufffd"],
)
def test_plain_text_refuses_control_characters_and_replacement_character(value: str) -> None:
    assert errors("plain", value) == [NOT_ALLOWED]


def test_plain_text_allows_tab_when_asked() -> None:
    assert errors("spaced", "correct\thorse") == []


@pytest.mark.parametrize("value", ["line\nbreak", "nul\x00", "\ufffd"])
def test_plain_text_allowing_whitespace_still_refuses_other_controls(value: str) -> None:
    assert errors("spaced", value) == [NOT_ALLOWED]


def test_plain_text_refuses_a_file_before_length_sees_it() -> None:
    upload = FileStorage(io.BytesIO(b"alice"), filename="alice.txt")

    assert errors("plain", upload) == ["Send this field as text."]


async def test_a_longer_username_limit_applies_to_the_form_too(
    tmp_path: Path, database: str
) -> None:
    # A limit set in one place only used to create users who could never log in.
    name = "a" * 100
    app = create_app(settings_at_head(tmp_path, database, USERNAME_MAX_LENGTH=100))
    async with app.test_app():
        await add_user(app, name)

        response = await AuthActions(app.test_client()).login(name)

    assert response.status_code == 302
