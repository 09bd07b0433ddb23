"""Translation: every string a person reads goes through gettext (Flask-Babel).

Templates use ``{{ _('...') }}``; the form's labels come from
``portal/report.py``, marked there with ``N_`` and translated here at render
time. The locale is the best match between the browser's languages and the
catalogues in the translations directory (English when none matches); the
page's ``dir`` follows the locale, and the CSS uses logical properties, so
right-to-left languages need no other change.
"""

from __future__ import annotations

from pathlib import Path

from babel import Locale
from flask import Flask, request
from flask_babel import Babel, get_locale, gettext

DEFAULT_LOCALE = "en"


def translate(message: str) -> str:
    """``message`` (marked with ``N_`` elsewhere) in the request's language."""
    return str(gettext(message))


def available_locales(translations: Path) -> list[str]:
    """The locales with a compiled catalogue under ``translations``, and English."""
    found = {p.parent.parent.name for p in translations.glob("*/LC_MESSAGES/*.mo")}
    return sorted(found | {DEFAULT_LOCALE})


def page_language() -> dict[str, str]:
    """The ``lang`` and ``dir`` attributes of the page's ``<html>`` element."""
    locale = get_locale() or Locale.parse(DEFAULT_LOCALE)
    rtl = locale.character_order == "right-to-left"
    return {"lang": str(locale).replace("_", "-"), "dir": "rtl" if rtl else "ltr"}


def init(app: Flask, translations: Path) -> None:
    """Set up Flask-Babel on ``app`` with the catalogues under ``translations``."""
    available = available_locales(translations)

    def select() -> str | None:
        return request.accept_languages.best_match(available, default=DEFAULT_LOCALE)

    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(translations)
    Babel(app, default_locale=DEFAULT_LOCALE, locale_selector=select)
    app.context_processor(lambda: {"page_language": page_language()})
