"""The allegation form: its fields, their allowed values, and the JSON sealed inside the envelope.

The categories follow those the Human Rights Council and the
Secretary-General's reports on reprisals use, so that staff can analyse
cases. Everything here ends up *inside* the envelope; the server never
stores any of it. The browser (``envelope.js``) builds the same JSON from
the rendered form; the server builds it here only on the no-JavaScript path
after the submitter's explicit choice. No Flask import: the desk reads
reports with this module too. Labels are marked with ``N_`` for extraction
and translated when the form is rendered.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from portal.attachment import Metadata, check_listing

REPORT_TYPE = "reprisal-report"
REPORT_VERSION = 1
MAX_TEXT = 300
MAX_ACCOUNT = 100_000

Kind = Literal["choice", "multi", "text", "textarea", "flag", "year"]


def N_(text: str) -> str:
    """Mark ``text`` for translation without translating it here."""
    return text


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: Kind
    section: str
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = False
    max_length: int = MAX_TEXT
    hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _choices(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return pairs


YES_NO = _choices(("yes", N_("Yes")), ("no", N_("No")))
YES_NO_UNKNOWN = (*YES_NO, ("unknown", N_("I don't know")))

SECTIONS = (
    ("target", N_("Who was targeted")),
    ("cooperation", N_("The cooperation with the United Nations")),
    ("acts", N_("What happened")),
    ("consent", N_("Consent")),
    ("account", N_("In your own words")),
)

FIELDS: tuple[Field, ...] = (
    Field("target_kind", N_("Who was targeted?"), "choice", "target", _choices(
        ("individual", N_("An individual")), ("group", N_("A group of people")),
        ("organisation", N_("An organisation")))),
    Field("target_role", N_("Their role (choose all that apply)"), "multi", "target", _choices(
        ("defender", N_("Human rights defender")), ("journalist", N_("Journalist")),
        ("lawyer", N_("Lawyer")), ("victim_witness", N_("Victim or witness")),
        ("relative", N_("Relative of a victim")),
        ("nhri_staff", N_("Staff of a national human rights institution")),
        ("indigenous_representative", N_("Representative of Indigenous peoples")),
        ("trade_unionist", N_("Trade unionist")), ("other", N_("Other")))),
    Field("target_gender", N_("Their gender (optional, for gender-responsive analysis)"),
          "choice", "target", _choices(
        ("woman", N_("Woman")), ("man", N_("Man")), ("other", N_("Another gender")),
        ("not_said", N_("Prefer not to say")))),
    Field("submitter_relation", N_("How are you related to them?"), "choice", "target", _choices(
        ("self", N_("I am the person targeted")), ("relative", N_("I am a relative")),
        ("representative", N_("I represent them (lawyer or representative)")),
        ("organisation", N_("An organisation acting with their informed consent")),
        ("witness", N_("I witnessed it")), ("other", N_("Other")))),
    Field("un_body", N_("Which part of the UN (choose all that apply)"), "multi", "cooperation",
          _choices(
        ("hrc", N_("Human Rights Council")), ("upr", N_("Universal Periodic Review")),
        ("special_procedure", N_("A special procedure (special rapporteur, working group)")),
        ("treaty_body", N_("A treaty body")), ("ohchr", N_("OHCHR or one of its field presences")),
        ("country_team", N_("A UN country team")), ("peace_operation", N_("A peace operation")),
        ("security_council", N_("The Security Council")), ("other", N_("Other")))),
    Field("un_body_name", N_("Its name, if it has one"), "text", "cooperation",
          hint=N_("For example: Special Rapporteur on human rights defenders")),
    Field("cooperation_kind", N_("The cooperation (choose all that apply)"), "multi",
          "cooperation", _choices(
        ("information", N_("Sought to cooperate, cooperated or gave information")),
        ("procedure", N_("Used a UN procedure, or assisted someone who did")),
        ("communication", N_("Submitted a communication")),
        ("relative", N_("Relative of a victim, or of someone who assisted")))),
    Field("acts", N_("What was done (choose all that apply)"), "multi", "acts", _choices(
        ("threats", N_("Threats")), ("harassment", N_("Harassment, including by officials")),
        ("surveillance", N_("Surveillance, online or offline")),
        ("smear", N_("Smear campaigns or hate speech")), ("travel_ban", N_("Travel ban")),
        ("legislation", N_("Restrictive legislation, deregistration or dissolution")),
        ("detention", N_("Arbitrary arrest or detention")),
        ("physical_attack", N_("Physical attack")), ("torture", N_("Torture or ill-treatment")),
        ("sgbv", N_("Sexual or gender-based violence")),
        ("medical_care", N_("Denial of medical care")), ("killing", N_("Killing")),
        ("relatives", N_("Acts against relatives")), ("other", N_("Other")))),
    Field("setting", N_("Where did it happen?"), "choice", "acts", _choices(
        ("online", N_("Online")), ("offline", N_("Offline")), ("both", N_("Both")))),
    Field("perpetrator", N_("Who is alleged to have done it?"), "choice", "acts", _choices(
        ("state", N_("State authorities or officials")), ("non_state", N_("Non-State actors")),
        ("unknown", N_("Unknown")))),
    Field("country", N_("Country"), "text", "acts", max_length=100),
    Field("when_month", N_("Month"), "choice", "acts", _choices(
        ("1", N_("January")), ("2", N_("February")), ("3", N_("March")), ("4", N_("April")),
        ("5", N_("May")), ("6", N_("June")), ("7", N_("July")), ("8", N_("August")),
        ("9", N_("September")), ("10", N_("October")), ("11", N_("November")),
        ("12", N_("December")))),
    Field("when_year", N_("Year"), "year", "acts", max_length=4),
    Field("when_approximate", N_("The date is approximate"), "flag", "acts"),
    Field("ongoing_risk", N_("Is the risk ongoing?"), "choice", "acts", YES_NO_UNKNOWN),
    Field("urgent", N_("This is urgent: someone is in danger now"), "flag", "acts"),
    Field("consent_informed", N_("Was the person targeted (or their family) told of the risks"
          " of reporting this?"), "choice", "consent", YES_NO, required=True),
    Field("consent_publication", N_("May the case appear in the Secretary-General's annual"
          " report?"), "choice", "consent", _choices(
        ("named", N_("Yes, with names")), ("anonymous", N_("Yes, without names")),
        ("no", N_("No"))), required=True),
    Field("consent_raise_with_state", N_("May OHCHR raise the case with the State concerned?"),
          "choice", "consent", YES_NO, required=True),
    Field("consent_reply", N_("May OHCHR staff reply to you through this portal?"), "choice",
          "consent", YES_NO, required=True),
    Field("reported_before", N_("Was this already reported to the UN?"), "choice", "account",
          YES_NO_UNKNOWN),
    Field("reported_where", N_("If so, where and when?"), "text", "account"),
    Field("account", N_("What happened, in your own words"), "textarea", "account",
          required=True, max_length=MAX_ACCOUNT,
          hint=N_("Who, what, where, when, and why you think it was because of cooperation"
                  " with the UN. Up to 100,000 characters.")),
)  # fmt: skip

BY_NAME = {f.name: f for f in FIELDS}


class ReportError(ValueError):
    """The form's values are not a valid report; ``problems`` maps field names to messages."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = dict(problems)


def _value(f: Field, values: Sequence[str]) -> tuple[Any, str | None]:
    """The report value of one field from the submitted strings, or a problem message."""
    if f.kind == "multi":
        allowed = {v for v, _ in f.choices}
        picked = [v for v, _ in f.choices if v in values]  # form order, no repeats
        return (picked or None), (N_("Choose from the list.") if set(values) - allowed else None)
    if f.kind == "flag":
        return (True if values and values[0] in ("on", "true", "1") else None), None
    # Browsers submit a textarea's line breaks as CR LF; the JS path reads LF.
    text = values[0].replace("\r\n", "\n").replace("\r", "\n").strip() if values else ""
    if len(values) > 1:
        return None, N_("Give one answer.")
    if not text:
        return None, (N_("This is required.") if f.required else None)
    if len(text) > f.max_length:
        return None, N_("This is too long.")
    if f.kind == "choice" and text not in {v for v, _ in f.choices}:
        return None, N_("Choose from the list.")
    if f.kind == "year" and not (text.isascii() and text.isdigit() and len(text) == 4):
        return None, N_("Give a year such as 2024.")
    return text, None


def field_value(f: Field, values: Sequence[str]) -> tuple[Any, str | None]:
    """The value of ``f`` from the submitted strings, or a problem (``portal.followup`` too)."""
    return _value(f, values)


def from_form(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The report's field values from submitted form data (``name -> list of strings``).

    Unknown names are ignored (the CSRF token, the sealing choice); empty
    answers are left out. Raises :class:`ReportError` listing every problem.
    """
    fields: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for f in FIELDS:
        value, problem = _value(f, list(form.get(f.name, [])))
        if problem:
            problems[f.name] = problem
        elif value is not None:
            fields[f.name] = value
    if problems:
        raise ReportError(problems)
    return fields


def document(
    fields: Mapping[str, Any],
    reply_public_key: bytes,
    sealed_by: str,
    attachments: Sequence[Metadata] = (),
) -> dict[str, Any]:
    """The JSON object sealed in the envelope (see ``docs/FORMAT.md`` §15).

    ``attachments`` are the metadata of the files sealed with the report, in
    the submitter's order; the member is left out when there are none.
    """
    doc = {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        "sealed_by": sealed_by,
        "reply_public_key": base64.b64encode(reply_public_key).decode(),
        "fields": dict(fields),
    }
    if attachments:
        listed = [meta.listing() for meta in attachments]
        check_listing(listed)  # never seal a list the desk would refuse
        doc["attachments"] = listed
    return doc
