"""The allegation form as the templates render it, from ``portal/report.py``.

Short single-answer lists become radio buttons (with a "no answer" choice
when the question is optional, since a radio cannot be unticked without
JavaScript); long ones a select; multiple answers a group of checkboxes; a
yes/no statement one checkbox. Field names and values are exactly those of
``report.FIELDS``, which ``form.js`` and ``report.from_form`` both read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portal import report
from portal.report import Field

MAX_RADIOS = 6
WIDGETS = {"multi": "checkboxes", "flag": "checkbox", "text": "text", "year": "text"}


@dataclass(frozen=True)
class Control:
    field: Field
    widget: str  # radios, select, checkboxes, checkbox, text, textarea
    values: tuple[str, ...]  # what was submitted, when the form is shown again
    problem: str | None

    @property
    def id(self) -> str:
        return f"field-{self.field.name}"

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    controls: tuple[Control, ...]


def widget(field: Field) -> str:
    """How ``field`` is rendered."""
    if field.kind == "choice":
        return "radios" if len(field.choices) <= MAX_RADIOS else "select"
    return WIDGETS.get(field.kind, field.kind)


def sections(
    values: Mapping[str, Sequence[str]] | None = None,
    problems: Mapping[str, str] | None = None,
) -> tuple[Section, ...]:
    """The form's sections, in order, each with its controls (and any problem)."""
    values, problems = values or {}, problems or {}
    return tuple(
        Section(
            name,
            label,
            tuple(
                Control(f, widget(f), tuple(values.get(f.name, ())), problems.get(f.name))
                for f in report.FIELDS
                if f.section == name
            ),
        )
        for name, label in report.SECTIONS
    )
