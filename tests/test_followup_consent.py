"""The consent a case shows once follow-ups changed it (``portal/desk/followups.py``).

The server keeps only the day of arrival, so a later day wins and two
follow-ups of one day that disagree leave the answer "unclear".
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from portal.desk.casestore import Item
from portal.desk.followups import current_fields

DAY = dt.date(2026, 11, 1)


def item(kind: str, day: int, **fields: Any) -> Item:
    document = {"type": f"reprisal-{kind}", "version": 1, "fields": fields}
    return Item(id=f"{kind}{day}", received_on=DAY + dt.timedelta(days=day),
                document=json.dumps(document))  # fmt: skip


def test_the_report_alone():
    report = item("report", 0, country="Utopia", consent_publication="anonymous")
    assert current_fields([report]) == {"country": "Utopia", "consent_publication": "anonymous"}
    assert current_fields([]) == {}


def test_a_later_follow_up_changes_consent_but_not_the_rest():
    items = [
        item("report", 0, country="Utopia", consent_publication="named", consent_reply="yes"),
        item("followup", 2, consent_publication="anonymous", account="more", country="Elsewhere"),
        item("followup", 5, consent_publication="no"),
    ]
    fields = current_fields(items)
    assert fields["consent_publication"] == "no"
    assert fields["consent_reply"] == "yes" and fields["country"] == "Utopia"
    assert "account" not in fields


def test_two_follow_ups_of_one_day_that_disagree_leave_it_unclear_until_a_later_one():
    report = item("report", 0, consent_raise_with_state="yes")
    first = item("followup", 3, consent_raise_with_state="no")
    second = item("followup", 3, consent_raise_with_state="yes")
    second.id = "followup3b"
    assert current_fields([report, first, second])["consent_raise_with_state"] == "unclear"
    agreeing = item("followup", 3, consent_raise_with_state="no")
    assert current_fields([report, first, agreeing])["consent_raise_with_state"] == "no"
    later = item("followup", 4, consent_raise_with_state="yes")
    assert current_fields([report, first, second, later])["consent_raise_with_state"] == "yes"


def test_a_case_known_only_from_a_follow_up_shows_its_consent():
    assert current_fields([item("followup", 1, consent_reply="no")]) == {"consent_reply": "no"}
