"""JSON for files people review and trust: ambiguous documents are refused.

``json.loads`` keeps the last of repeated fields, so a reviewer could read
one key while the parser used another; it also accepts NaN and Infinity, and
lets RecursionError or ValueError escape on pathological input. Key manifests
and key files are parsed here instead.
"""

from __future__ import annotations

import json
from typing import Any


class StrictJSONError(ValueError):
    """The text is not JSON, or is JSON that a key file must not contain."""


def loads(text: str) -> object:
    """Parse ``text``; raises :class:`StrictJSONError` with a message a person can act on."""
    try:
        return json.loads(text, object_pairs_hook=_no_repeats, parse_constant=_no_constant)
    except StrictJSONError:
        raise
    except json.JSONDecodeError as err:
        raise StrictJSONError(f"not valid JSON (line {err.lineno}): {err.msg}") from None
    except RecursionError:
        raise StrictJSONError("not valid JSON: nested too deeply") from None
    except ValueError as err:  # an integer of more than 4300 digits, among others
        raise StrictJSONError(f"not valid JSON: {str(err)[:80]}") from None


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise StrictJSONError("a JSON object repeats a field name")
    return dict(pairs)


def _no_constant(name: str) -> object:
    raise StrictJSONError(f"{name} is not allowed")
