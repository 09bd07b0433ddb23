"""Follow-ups on the desk: ``portal-desk import`` files them under their thread's case after
checking their thread proof; ``cases`` shows unread follow-ups and the consent as changed;
``show`` prints them and marks them read. Real source and staff apps, real ``portal-desk``.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
from followup_helpers import post_followup, report, sealed_followup, token_of, upload_followup
from sqlalchemy import create_engine, text
from test_staff_export import apps, download, signed_in

from portal import receipt
from portal.desk.casestore import STORE_FILE
from portal.desk.cli import main

__all__ = ["apps"]  # a fixture used here


def desk_import(staff, clock, tmp_path: Path, desk_keys, name: str = "export.tar") -> int:
    exported = tmp_path / name
    if "client" not in staff.extensions:
        staff.extensions["client"] = signed_in(staff, clock)  # one account per test
    exported.write_bytes(download(staff.extensions["client"]))
    key = desk_keys[0]
    return main(
        [
            "import",
            "--store",
            str(tmp_path / "store"),
            "--secret-key",
            str(key.secret_file),
            "--passphrase-file",
            str(key.passphrase_file),
            str(exported),
        ]
    )


def desk(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def items(store: Path) -> list[tuple[str, str | None, str]]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            query = "SELECT status, thread_id, coalesce(error, '') FROM items ORDER BY status"
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


@pytest.fixture()
def thread(apps):
    source, _ = apps
    client = source.test_client()
    return client, report(client, consent_publication="anonymous")


def test_follow_ups_join_the_case_and_are_shown_once_as_unread(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys
):
    _, staff = apps
    client, shown = thread
    marker = "MORE-" + secrets.token_hex(6)
    assert (
        post_followup(
            client, shown, {"account": f"plain {marker}", "consent_publication": "no"}
        ).status_code
        == 200
    )
    body = sealed_followup(team_keys, shown, {"account": f"browser {marker}\nЖурналист"})
    assert upload_followup(client, body, token_of(shown)).status_code == 201
    assert desk_import(staff, clock, tmp_path, desk_keys) == 0
    store = str(tmp_path / "store")
    statuses = items(tmp_path / "store")
    assert [s for s, _, _ in statuses] == ["opened"] * 3 and len({t for _, t, _ in statuses}) == 1
    code, out, _ = desk(capsys, "cases", "--store", store)
    assert code == 0
    (line,) = out.splitlines()[1:]
    assert "[2 unread follow-ups]" in line
    assert " no " in line  # publication as the follow-up changed it, not "anonymous"
    case = line.split()[0]
    code, out, _ = desk(capsys, "show", "--store", store, case[:8])
    assert code == 0
    assert out.count("FOLLOW-UP") == 2 and "thread proof checked" in out
    assert f"plain {marker}" in out and f"browser {marker}" in out and "Журналист" in out
    assert "Consent changed to" in out and "May the case appear" in out
    code, out, _ = desk(capsys, "cases", "--store", store)
    assert "unread" not in out
    # Importing the same bundle again changes nothing and keeps them read.
    assert desk_import(staff, clock, tmp_path, desk_keys, "again.tar") == 0
    assert "unread" not in desk(capsys, "cases", "--store", store)[1]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("another receipt's proof", "FollowupNotBound"),
        ("no proof for the desk's key", "FollowupNotBound"),
        ("proofs not an object", "FollowupNotBound"),
        ("proof not base64", "FollowupNotBound"),
        ("another reply key", "ReplyKeySwapped"),
        ("server path claimed", "SealedByMismatch"),
        ("version 2", "UnsupportedFollowup"),
        ("no fields member", "MalformedFollowup"),
    ],
)
def test_a_forged_or_malformed_follow_up_is_refused_and_not_acknowledged(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys, change, error
):
    _, staff = apps
    client, shown = thread
    marker = "FORGED-" + secrets.token_hex(6)
    fields = {"account": marker, "consent_publication": "named"}
    other = receipt.reply_secret(receipt.display(receipt.generate()))
    pub = base64.b64encode(receipt.reply_public_key(shown)).decode()
    changes: dict = {
        "another receipt's proof": {"secret": other, "reply_public_key": pub},
        "no proof for the desk's key": {"thread_proofs": {}},
        "proofs not an object": {"thread_proofs": ["x"]},
        "proof not base64": {"thread_proofs": {k: "!!" for k in _key_ids(team_keys)}},
        "another reply key": {"secret": other},
        "server path claimed": {"sealed_by": "server"},
        "version 2": {"version": 2},
        "no fields member": {},
    }[change]
    body = sealed_followup(team_keys, shown, fields, **changes)
    if change == "no fields member":
        document = json.loads(_open(body, team_keys))
        del document["fields"]
        body = _reseal(document, team_keys)
    assert upload_followup(client, body, token_of(shown)).status_code == 201
    capsys.readouterr()
    assert desk_import(staff, clock, tmp_path, desk_keys) == 1
    err = capsys.readouterr().err
    assert "portal-desk: error:" in err and "portal-desk: hint:" in err
    statuses = items(tmp_path / "store")
    assert ("failed", None, error) in statuses
    assert sum(s == "opened" for s, _, _ in statuses) == 1  # the report itself
    _, out, _ = desk(
        capsys, "show", "--store", str(tmp_path / "store"), next(t for s, t, _ in statuses if t)[:8]
    )
    assert marker not in out and "FAILED to open" in out
    # Failed items are never acknowledged (BUNDLES.md §8.2), so the server keeps it for review.


def test_content_outside_the_follow_up_form_is_kept_and_flagged(
    apps, clock, thread, tmp_path, desk_keys, team_keys, capsys
):
    _, staff = apps
    client, shown = thread
    body = sealed_followup(
        team_keys,
        shown,
        {"account": "ok", "acts": ["threats"], "consent_reply": "perhaps"},
        note="extra",
    )
    assert upload_followup(client, body, token_of(shown)).status_code == 201
    assert desk_import(staff, clock, tmp_path, desk_keys) == 1
    err = capsys.readouterr().err
    assert "unknown field 'acts'" in err and "consent_reply" in err
    store = str(tmp_path / "store")
    case = desk(capsys, "cases", "--store", store)[1].splitlines()[1].split()[0]
    out = desk(capsys, "show", "--store", store, case)[1]
    assert "content outside the follow-up form" in out and "Unexpected 'note'" in out


def _key_ids(team_keys) -> list[str]:
    from portal import envelope

    return [envelope.key_id(k).hex() for k in team_keys.public_keys]


def _open(body: bytes, team_keys) -> bytes:
    from portal import envelope

    return envelope.open_bytes(body, [team_keys.identities[0]])


def _reseal(document: dict, team_keys) -> bytes:
    from portal import envelope
    from portal.envelope import SealPath

    data = json.dumps(document).encode()
    return envelope.seal(data, list(team_keys.public_keys), SealPath.BROWSER)
