"""quartapp.web.fields writes every field of every form exactly as WTForms does.

The form macros use it instead of WTForms' widgets for speed; each form of each feature
is rendered both ways, plain, with the macros' attributes, with errors and with data,
so an upgrade of WTForms that changes its markup fails here.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, cast

import pytest
from markupsafe import Markup
from quart import Quart
from quart_wtf import QuartForm
from wtforms import Field, StringField
from wtforms.widgets import TextArea

from quartapp import FEATURES
from quartapp.web import fields

# What the macros and templates pass: aria links, the login page's hints, a class,
# a bare boolean, a False left out, and a value that must be escaped.
ATTRIBUTES: list[dict[str, Any]] = [
    {},
    {"aria_describedby": "username-hint username-errors", "aria_invalid": "true"},
    {"autocomplete": "username webauthn", "autocapitalize": "none", "spellcheck": "false"},
    {"autofocus": True, "class_": "password-input", "disabled": False},
    {"data_passkey_field": 'a "quoted" <value> & more'},
    {"value": Markup('"markup"')},
]


def every_form() -> list[type[QuartForm]]:
    """Every form class in the features' ``forms`` modules."""
    found: list[type[QuartForm]] = []
    root = Path(importlib.import_module("quartapp").__file__ or "").parent
    for feature in FEATURES:
        if not (root / feature / "forms.py").is_file():
            continue
        module = importlib.import_module(f"quartapp.{feature}.forms")
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, QuartForm)
            and value is not QuartForm
            and value.__module__ == module.__name__
        ]
    return found


FORMS = every_form()


def test_every_feature_form_is_found() -> None:
    names = {form.__name__ for form in FORMS}
    assert {"LoginForm", "RegistrationForm", "ChangePasswordForm"} <= names


def same_markup(field: Field) -> None:
    for attrs in ATTRIBUTES:
        written = fields.render_input(field, **attrs)
        assert str(written) == str(field(**attrs)), (field.name, attrs)
    assert fields.render_label(field) == field.label()


@pytest.mark.parametrize("form_class", FORMS, ids=lambda form: form.__name__)
async def test_fields_match_wtforms(app: Quart, form_class: type[QuartForm]) -> None:
    async with app.test_request_context("/", method="GET"):
        form = await form_class.create_form()
        assert fields.hidden_fields(form) == form.hidden_tag()
        for field in form:
            same_markup(field)
            # With data and errors, as after a refused post.
            field.data = True if field.type == "BooleanField" else 'o"brien <b>'
            field.raw_data = [field.data]
            field.errors = ["Bad value."]
            same_markup(field)


async def test_other_widgets_go_through_wtforms(app: Quart) -> None:
    class Notes(QuartForm):
        notes = StringField("Notes", widget=TextArea(), render_kw={"rows": 3})
        plain = StringField("Plain", render_kw={"class_": "wide", "placeholder": "x"})

    async with app.test_request_context("/", method="GET"):
        form = cast(Notes, await Notes.create_form())
        written = fields.render_input(form.notes, aria_invalid="true")
        assert written == form.notes(aria_invalid="true")
        assert written.startswith("<textarea")
        # render_kw is merged as WTForms merges it, under the call's own attributes.
        assert fields.render_input(form.plain, class_="narrow") == form.plain(class_="narrow")
