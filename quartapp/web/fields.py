"""Form fields written straight to HTML, as WTForms writes them, for the templates' macros.

WTForms renders a field through its meta, its widget and ``html_params``: the flags are
listed with ``dir()``, every attribute goes through ``Markup.format``. That was about a
third of ``GET /login`` in the profile. The widgets our forms use are plain ``<input>``
elements, so :func:`render_input` writes the same markup (the same attributes, in the
same sorted order, escaped the same way) in one pass, and :func:`render_label` and
:func:`hidden_fields` do the same for labels and ``form.hidden_tag()``. Any other
widget, or a meta that renders its own way, goes through WTForms as before.

tests/web/test_fields.py renders every field of every form both ways and compares.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from markupsafe import Markup, escape
from quart import Quart
from wtforms import Field
from wtforms.form import BaseForm
from wtforms.meta import DefaultMeta
from wtforms.widgets import (
    CheckboxInput,
    EmailInput,
    HiddenInput,
    PasswordInput,
    SubmitInput,
    TextInput,
)
from wtforms.widgets.core import Input

# The widgets written here, with the flags each turns into attributes (its
# ``validation_attrs``): every other widget is left to WTForms.
WIDGETS: dict[type[Any], frozenset[str]] = {
    kind: frozenset(kind.validation_attrs)
    for kind in (TextInput, EmailInput, PasswordInput, CheckboxInput, HiddenInput, SubmitInput)
}
# The keyword names the templates pass, cleaned once (``class_``, ``aria_invalid``).
_clean: dict[str, str] = {}


def _key(name: str) -> str:
    """WTForms' ``clean_key``: ``class_`` is ``class``, ``aria_invalid`` is ``aria-invalid``."""
    key = _clean.get(name)
    if key is None:
        key = name.rstrip("_")
        if key.startswith(("data_", "aria_")):
            key = key.replace("_", "-")
        _clean[name] = key
    return key


def _attributes(attrs: dict[str, Any]) -> str:
    """``html_params``: sorted by name, True bare, False left out, values escaped."""
    parts = []
    for name in sorted(attrs):
        value = attrs[name]
        if value is True:
            parts.append(name)
        elif value is not False:
            # escape() leaves a Markup value as it is, quotes and all: hence the replace.
            parts.append(f'{name}="{str(escape(value)).replace(chr(34), "&quot;")}"')
    return " ".join(parts)


def render_input(field: Field, **kwargs: Any) -> Markup:
    """``field(**kwargs)``, written directly for the plain ``<input>`` widgets."""
    widget = field.widget
    allowed = WIDGETS.get(type(widget))
    if (
        allowed is None
        or type(field.meta).render_field is not DefaultMeta.render_field
        or getattr(field, "_datalist", None) is not None
    ):
        return field(**kwargs)
    attrs = {_key(name): value for name, value in (field.render_kw or {}).items()}
    attrs.update((_key(name), value) for name, value in kwargs.items())
    if type(widget) is PasswordInput and widget.hide_value:
        attrs["value"] = ""
    elif type(widget) is CheckboxInput and getattr(field, "checked", field.data):
        attrs.setdefault("checked", True)
    elif type(widget) is SubmitInput:
        attrs.setdefault("value", field.label.text)  # the button's text, not its data
    attrs.setdefault("id", field.id)
    attrs.setdefault("type", cast(Input, widget).input_type)
    if "value" not in attrs:
        attrs["value"] = cast(Any, field)._value()  # what WTForms shows
    # Flags are instance attributes; dir() would list the same names, sorted, slowly.
    for flag, value in vars(field.flags).items():
        if flag in allowed and flag not in attrs:
            attrs[flag] = value() if callable(value) else value
    attrs["name"] = field.name
    # Safe: _attributes escapes every value, and the names are the templates' own.
    return Markup(f"<input {_attributes(attrs)}>")  # noqa: S704


def render_label(field: Field) -> Markup:
    """``field.label``, as WTForms writes it."""
    label = field.label
    attrs = _attributes({"for": label.field_id})
    return Markup(f"<label {attrs}>{escape(label.text)}</label>")  # noqa: S704 (escaped)


def hidden_fields(form: BaseForm | Iterable[Field]) -> Markup:
    """``form.hidden_tag()``: the form's hidden inputs (the CSRF token), one a line."""
    hidden = [render_input(field) for field in form if isinstance(field.widget, HiddenInput)]
    return Markup("\n").join(hidden)


def init_app(app: Quart) -> None:
    """Offer the three to every template."""
    app.jinja_env.globals.update(
        render_input=render_input, render_label=render_label, hidden_fields=hidden_fields
    )
