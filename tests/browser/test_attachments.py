"""Attachments through real Chromium and a real source server, end to end.

Each test puts a unique marker in every file's bytes and name, then checks:
no request carried it (JavaScript modes: the browser sealed the files); the
database, the data directory and the server's log hold it nowhere (every
mode); and what was stored opens with the team's key (``envelope.open_stream``
and ``portal.attachment.decode``, and ``portal-desk decrypt`` itself) to every
file, byte for byte, listed in the report in the order chosen. Connections are cut with
``page.route`` (requests aborted before the server sees them, and answers
dropped after it acted), and the server is stopped and started again on the
same port and data directory in the middle of an upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import BIN, JS_MODES, PASSPHRASE, Server, Team
from playwright.sync_api import Page, Route
from source_fixtures import wait_until_serving
from test_submit import RECEIPT, assert_no_trace, expected_fields, fill, stored_envelopes

from portal import attachment, envelope, keyfile

MiB = 1 << 20
NOTICES = """
window.uploadNotices = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.upload-notice')) {
    const text = el.textContent;
    if (text && window.uploadNotices[window.uploadNotices.length - 1] !== text) {
      window.uploadNotices.push(text);
    }
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def make_files(folder: Path, marker: str, sizes: list[int]) -> list[Path]:
    """Files whose names and bytes carry the marker (several times in the larger ones)."""
    folder.mkdir(exist_ok=True)
    files = []
    for n, size in enumerate(sizes):
        body = bytearray(hashlib.shake_256(f"{marker} {n}".encode()).digest(size))
        for at in range(0, max(size - len(marker), 0), 700_000):
            body[at : at + len(marker)] = marker.encode()
        path = folder / f"evidence {n} {marker} ü.bin"
        path.write_bytes(bytes(body))
        files.append(path)
    return files


Opened = dict[str, tuple[attachment.Metadata, bytes, Path]]


def open_stored(server: Server) -> tuple[dict[str, Any], Opened]:
    """The report document and every attachment (by id), opened with the team's key."""
    key = keyfile.load(server.team.key_file, PASSPHRASE)
    report: dict[str, Any] | None = None
    files: Opened = {}
    plain, out = server.data_dir.parent / "opened.bin", server.data_dir.parent / "file.bin"
    for path in stored_envelopes(server.data_dir):
        with path.open("rb") as src, plain.open("wb") as dst:
            envelope.open_stream(src, dst, [key])
        with plain.open("rb") as src:
            is_attachment = src.read(8) == attachment.MAGIC
        if is_attachment:
            with plain.open("rb") as src, out.open("wb") as dst:
                meta = attachment.decode(src, dst)
            files[meta.id] = (meta, out.read_bytes(), path)
        else:
            assert report is None, "two reports stored"
            report = json.loads(plain.read_bytes())
    for temporary in (plain, out):
        temporary.unlink(missing_ok=True)
    assert report is not None, "no report stored"
    return report, files


def check_stored(server: Server, marker: str, chosen: list[Path], sealed_by: str) -> None:
    report, files = open_stored(server)
    assert report["sealed_by"] == sealed_by
    assert report["fields"] == expected_fields(marker)
    check_files(report, files, chosen, server)
    assert_no_trace(server, marker)


def check_files(document: dict[str, Any], files: dict[str, Any], chosen: list[Path],
                server: Server) -> None:  # fmt: skip
    """The document lists exactly ``chosen``, and each stored file is its bytes, verified."""
    listed = document["attachments"]
    assert [entry["name"] for entry in listed] == [p.name for p in chosen]
    assert len(files) == len(chosen)
    for entry, path in zip(listed, chosen, strict=True):
        meta, data, stored = files[entry["id"]]
        assert data == path.read_bytes(), f"{path.name} differs"
        assert meta.listing() == entry
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
        opened, said = desk_decrypt(server, stored)
        assert opened == data
        assert f"{entry['size']} bytes); SHA-256 verified" in said, said


def desk_decrypt(server: Server, path: Path) -> tuple[bytes, str]:
    """What `portal-desk decrypt` writes for an attachment envelope, and what it says."""
    out = server.data_dir.parent / "desk-file.bin"
    done = subprocess.run(
        [BIN / "portal-desk", "decrypt", "--secret-key", server.team.key_file,
         "--passphrase-file", server.team.passphrase_file, "-o", out, path],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    data = out.read_bytes()
    out.unlink()
    return data, done.stderr


class Requests:
    """Every request the page makes: method, URL, headers and body."""

    def __init__(self, page: Page) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        page.on("request", self.add)

    def add(self, request: Any) -> None:
        body = request.post_data_buffer or b""
        self.seen.append((request.method, request.url, request.headers, body))

    def assert_clean(self, marker: str) -> None:
        needle = marker.encode()
        for method, url, headers, body in self.seen:
            assert needle not in body, f"the marker went out in a {method} body"
            assert marker not in url and marker not in json.dumps(headers)

    def patches(self) -> int:
        return sum(1 for method, url, _, _ in self.seen if method == "PATCH" and "/uploads/" in url)


def submit(page: Page, server_url: str, marker: str, files: list[Path]) -> str:
    page.goto(f"{server_url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.click('#report-form button[type="submit"]:visible')
    return receipt_shown(page)


def receipt_shown(page: Page, timeout: float = 180_000) -> str:
    shown = page.locator("[data-receipt]").first
    shown.wait_for(state="visible", timeout=timeout)
    text = shown.inner_text().strip()
    assert RECEIPT.fullmatch(text), text
    return text


@pytest.mark.parametrize("mode", JS_MODES)
def test_several_files_are_sealed_in_the_browser_and_uploaded(
    server: Server, browser_for: Any, tmp_path: Path, mode: str
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [1_500_000, 0, 70_000])
    page = browser_for(mode).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    requests = Requests(page)
    submit(page, server.url, marker, files)
    assert not errors
    requests.assert_clean(marker)
    assert requests.patches() >= 3
    check_stored(server, marker, files, "browser")


def test_an_upload_whose_connection_is_cut_resumes(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [5 * MiB + 12345, 300_000])
    context = browser_for("normal")
    context.add_init_script(NOTICES)
    page = context.new_page()
    requests = Requests(page)
    cuts = {"patch": 0, "get": 0, "before": 0, "after": 0}

    def cut(route: Route) -> None:
        method = route.request.method
        if method == "PATCH":
            cuts["patch"] += 1
            if cuts["patch"] in (2, 5):  # lost on the way: the server never sees it
                cuts["before"] += 1
                route.abort("connectionreset")
                return
            if cuts["patch"] == 3:  # the server stores it, the answer is lost
                route.fetch()
                cuts["after"] += 1
                route.abort("connectionreset")
                return
        if method == "GET":
            cuts["get"] += 1
            if cuts["get"] == 1:
                route.abort("internetdisconnected")
                return
        route.continue_()

    page.route("**/uploads/*", cut)
    submit(page, server.url, marker, files)
    assert cuts["before"] == 2 and cuts["after"] == 1 and cuts["get"] >= 2
    notices = page.evaluate("window.uploadNotices")
    assert any("connection to the portal was lost" in n for n in notices), notices
    assert any("connection is back" in n for n in notices), notices
    requests.assert_clean(marker)
    check_stored(server, marker, files, "browser")


def test_pause_and_resume(server: Server, browser_for: Any, tmp_path: Path) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [4 * MiB])
    page = browser_for("normal").new_page()
    requests = Requests(page)
    held: list[Route] = []

    def hold_second(route: Route) -> None:
        if route.request.method == "PATCH" and not held:
            held.append(route)  # keep the first PATCH hanging until Pause is pressed
            return
        route.continue_()

    page.route("**/uploads/*", hold_second)
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.click('#report-form button[type="submit"]:visible')
    page.locator("#upload-progress progress").first.wait_for()
    while not held:
        page.wait_for_timeout(50)
    page.click("#upload-progress .upload-pause")
    assert page.locator("#upload-progress .upload-resume").is_visible()
    assert "Paused" in page.inner_text("#upload-progress")
    with contextlib.suppress(Exception):
        held[0].continue_()  # the browser already gave up on it
    count = requests.patches()
    page.wait_for_timeout(1500)
    assert requests.patches() == count, "something was sent while paused"
    page.click("#upload-progress .upload-resume")
    receipt_shown(page)
    requests.assert_clean(marker)
    check_stored(server, marker, files, "browser")


def test_progress_shows_bytes_and_a_cancel_deletes_the_upload(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [3 * MiB])
    page = browser_for("normal").new_page()
    patches: list[Route] = []

    def hold_third(route: Route) -> None:
        if route.request.method == "PATCH":
            patches.append(route)
            if len(patches) == 3:
                return  # left hanging: the upload is in the middle when Cancel is pressed
        route.continue_()

    page.route("**/uploads/*", hold_third)
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.click('#report-form button[type="submit"]:visible')
    while len(patches) < 3:
        page.wait_for_timeout(50)
    figures = page.inner_text("#upload-progress .upload-figures")
    assert " of " in figures and "MB" in figures, figures
    page.click("#upload-progress .upload-cancel")
    alert = page.locator("[data-form-alert]")
    alert.wait_for(state="visible", timeout=60_000)
    assert "cancelled" in alert.inner_text()
    with contextlib.suppress(Exception):
        patches[2].continue_()  # the browser already gave up on it
    # DELETE removed the upload: nothing of it is left in the data directory.
    deadline = time.monotonic() + 10
    while stored_parts(server) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert stored_parts(server) == []
    assert stored_envelopes(server.data_dir) == []
    assert page.locator('#report-form button[type="submit"]:visible').is_enabled()


def stored_parts(server: Server) -> list[Path]:
    return [p for p in server.data_dir.rglob("*.part") if p.stat().st_size]


# --- a server restart in the middle of an upload -----------------------------------------------


class Restartable:
    """`portal serve source` on a fixed port, which the test can stop and start again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        marker = b"serving the source interface"
        before = self.log.read_bytes().count(marker) if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [BIN / "portal", "serve", "source", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until_serving(self.proc, self.port, self.log, marker, before)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def restartable(team: Team, tmp_path: Path) -> Iterator[tuple[Restartable, Server]]:
    """A source server that the test can stop and start on the same port, data and secret."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
           "PORTAL_KEYS": str(team.manifest_dir), "PORTAL_DATA_DIR": str(data_dir)}  # fmt: skip
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    proc = Restartable(env, tmp_path / "restart.log")
    proc.start()
    try:
        yield proc, Server(proc.url, data_dir, proc.log, env["PORTAL_SECRET_KEY"], team)
    finally:
        proc.stop()


def test_an_upload_resumes_after_the_server_restarts(
    restartable: tuple[Restartable, Server], browser_for: Any, tmp_path: Path
) -> None:
    proc, server = restartable
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [6 * MiB + 4321])
    context = browser_for("normal")
    context.add_init_script(NOTICES)
    page = context.new_page()
    requests = Requests(page)
    state = {"patches": 0, "stopped": False}

    def stop_on_third(route: Route) -> None:
        if route.request.method == "PATCH":
            state["patches"] += 1
            if state["patches"] == 3 and not state["stopped"]:
                proc.stop()  # the request below meets a closed port
                state["stopped"] = True
        route.continue_()

    page.route("**/uploads/*", stop_on_third)
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.click('#report-form button[type="submit"]:visible')
    while not state["stopped"]:
        page.wait_for_timeout(50)
    page.locator(".upload-notice", has_text="connection to the portal was lost").wait_for()
    page.wait_for_timeout(1500)
    proc.start()
    receipt_shown(page)
    assert proc.starts == 2
    notices = page.evaluate("window.uploadNotices")
    assert any("connection is back" in n for n in notices), notices
    requests.assert_clean(marker)
    check_stored(server, marker, files, "browser")


# --- JavaScript off ----------------------------------------------------------------------------


def test_files_without_javascript_are_sealed_by_the_server_after_consent(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [1_200_000, 0, 5000])
    page = browser_for("no-js").new_page()
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.check('[name="server_seal_consent"]')
    page.click('#report-form button[type="submit"]:visible')
    assert RECEIPT.search(page.inner_text("body")), "no receipt on the confirmation page"
    check_stored(server, marker, files, "server")


def test_hostile_file_names_are_sealed_as_text_and_cut_to_1000_characters(
    server: Server, browser_for: Any
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    names = [f"../../{marker}/../passwd", f"ctl\x01\x1f\x7f{marker}\u202e.txt", marker + "n" * 5000]
    payloads = [
        {"name": name, "mimeType": "application/x-test", "buffer": f"{n} {marker}".encode() * 999}
        for n, name in enumerate(names)
    ]
    page = browser_for("normal").new_page()
    requests = Requests(page)
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", payloads)
    chosen = page.evaluate(
        "Array.from(document.getElementById('attachment-files').files, (f) => f.name)"
    )
    page.click('#report-form button[type="submit"]:visible')
    receipt_shown(page)
    requests.assert_clean(marker)
    report, files = open_stored(server)
    listed = report["attachments"]
    assert [e["name"] for e in listed] == [attachment.clean_name(n) for n in chosen]
    assert len(listed[2]["name"]) == 1000
    for entry, payload in zip(listed, payloads, strict=True):
        meta, data, _ = files[entry["id"]]
        assert data == payload["buffer"]
        assert meta.media_type == "application/x-test"
        assert attachment.file_name(meta).startswith("attachment-")
    assert_no_trace(server, marker)


def test_a_report_that_fails_after_its_uploads_is_sent_again_without_uploading_again(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    files = make_files(tmp_path / "files", marker, [2 * MiB, 100_000])
    page = browser_for("normal").new_page()
    requests = Requests(page)
    reports: list[str] = []

    def drop_first_report(route: Route) -> None:
        reports.append(route.request.headers.get("x-attachments", ""))
        if len(reports) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/report/sealed", drop_first_report)
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.set_input_files("#attachment-files", [str(p) for p in files])
    page.click('#report-form button[type="submit"]:visible')
    alert = page.locator("[data-form-alert]")
    alert.wait_for(state="visible", timeout=120_000)
    patches = requests.patches()
    assert len(reports) == 1 and len(reports[0].split(" ")) == 2
    page.click('#report-form button[type="submit"]:visible')
    receipt_shown(page)
    assert requests.patches() == patches, "the files were uploaded again"
    assert reports[1] == reports[0], "the same uploads are attached"
    requests.assert_clean(marker)
    check_stored(server, marker, files, "browser")
