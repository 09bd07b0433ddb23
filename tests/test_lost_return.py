"""A lost return bundle is recovered by the next export, import and return (BUNDLES.md §8.5).

An item the desk acknowledged, but which a later export holds again, had
its return bundle never applied: the import clears its returned mark and
the next return bundle acknowledges it again. Real source and staff apps,
real ``portal-desk``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from test_bundle import BROWSER_FIELDS, import_args, submit_browser, submit_plain
from test_staff_export import apps, download, signed_in
from test_staff_return import alert, envelopes, upload

from portal import returnbundle
from portal.desk.casestore import STORE_FILE
from portal.desk.cli import main

__all__ = ["apps"]  # a fixture used here


def export(client, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.tar"
    path.write_bytes(download(client))
    return path


def desk_return(store: Path, tmp_path: Path, signer, name: str) -> bytes:
    out = tmp_path / f"{name}.tar"
    assert main(["return", "--store", str(store), *signer.return_args(), "-o", str(out)]) == 0
    return out.read_bytes()


def returned_ids(store: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT item_id FROM returned"))}
    finally:
        engine.dispose()


def test_a_lost_return_bundle_is_recovered_by_the_next_round(
    apps, clock, team_keys, desk_keys, desk_signer, data_dir, tmp_path, capsys
):
    source, staff = apps
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    submit_plain(source.test_client())
    client = signed_in(staff, clock)
    store = tmp_path / "store"
    stored = set(envelopes(data_dir))
    assert (
        main([str(a) for a in import_args(store, export(client, tmp_path, "e1"), desk_keys)]) == 0
    )
    lost = desk_return(store, tmp_path, desk_signer, "lost")  # never reaches the server
    assert returned_ids(store) == stored
    capsys.readouterr()
    # The next export still holds both items: the import clears their marks and says why.
    assert (
        main([str(a) for a in import_args(store, export(client, tmp_path, "e2"), desk_keys)]) == 0
    )
    err = capsys.readouterr().err
    assert (
        "2 items were acknowledged in an earlier return bundle but are in this export again" in err
    )
    assert returned_ids(store) == set()
    again = desk_return(store, tmp_path, desk_signer, "again")
    acks = returnbundle.parse(again, [desk_signer.entry.public_key]).acknowledgements
    assert {a.id for a in acks} == stored
    response = upload(client, again)
    assert response.status_code == 200, alert(response.get_data(as_text=True))
    assert envelopes(data_dir) == {}
    # The lost bundle, found and uploaded late, is a replay: refused, nothing changes.
    late = upload(client, lost)
    assert late.status_code == 409
    # Nothing reappears any more, so nothing is acknowledged again.
    capsys.readouterr()
    assert (
        main([str(a) for a in import_args(store, export(client, tmp_path, "e3"), desk_keys)]) == 0
    )
    assert "again" not in capsys.readouterr().err
    assert returned_ids(store) == stored


def test_an_item_imported_twice_before_its_return_is_acknowledged_once(
    apps, clock, desk_keys, desk_signer, tmp_path, capsys
):
    source, staff = apps
    submit_plain(source.test_client())
    client = signed_in(staff, clock)
    store = tmp_path / "store"
    first = export(client, tmp_path, "e1")
    for _ in range(2):
        assert main([str(a) for a in import_args(store, first, desk_keys)]) == 0
    assert "again" not in capsys.readouterr().err
    data = desk_return(store, tmp_path, desk_signer, "r1")
    assert len(returnbundle.parse(data, [desk_signer.entry.public_key]).acknowledgements) == 1
    empty = desk_return(store, tmp_path, desk_signer, "r2")
    assert returnbundle.parse(empty, [desk_signer.entry.public_key]).acknowledgements == ()


def test_other_bytes_under_a_returned_id_are_refused_and_stay_returned(
    apps, clock, desk_keys, desk_signer, data_dir, tmp_path, capsys
):
    source, staff = apps
    submit_plain(source.test_client())
    client = signed_in(staff, clock)
    store = tmp_path / "store"
    assert (
        main([str(a) for a in import_args(store, export(client, tmp_path, "e1"), desk_keys)]) == 0
    )
    desk_return(store, tmp_path, desk_signer, "lost")
    ((name, data),) = envelopes(data_dir).items()
    path = data_dir / "envelopes" / f"{name}.env"
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the server now sends other bytes
    capsys.readouterr()
    assert (
        main([str(a) for a in import_args(store, export(client, tmp_path, "e2"), desk_keys)]) == 1
    )
    err = capsys.readouterr().err
    assert "already in the store with a different envelope" in err and "again" not in err
    assert returned_ids(store) == {name}
