"""Hypothesis: random sequences of chunks, crashes and status checks against a model.

The model is the committed offset alone. Every PATCH (in order or not,
duplicated, overlapping, empty, too long, past the end, after the end) must
get exactly the answer the model predicts; after every step the server's
offset equals the model's and the part file begins with exactly the
envelope's first ``offset`` bytes. A "crash" leaves unacknowledged bytes
past the offset, as a server killed between its write and its commit would.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from source_fixtures import csrf_token
from sqlalchemy import select
from uploads_helpers import attachment_envelope, new_upload

from portal import uploads
from portal.models import Upload

MAX = uploads.MAX_CHUNK


def make_machine(client, app, body: bytes) -> type[RuleBasedStateMachine]:
    data_dir = app.extensions["portal.source"].config.data_dir
    csrf = csrf_token(client)
    length = len(body)

    class Protocol(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.token = new_upload(client, length, csrf)
            self.offset = 0

        def expected(self, at: int, size: int) -> tuple[int, int]:
            """The status and offset the protocol must answer with."""
            if at != self.offset or self.offset == length:
                return 409, self.offset
            if size > MAX or at + size > length:
                return 413, at
            if size == 0:
                return 400, at
            return 200, at + size

        def chunk(self, at: int, size: int) -> bytes:
            piece = body[at : at + size]
            return piece + os.urandom(size - len(piece))

        @rule(data=st.data())
        def send(self, data: st.DataObject) -> None:
            at = data.draw(st.one_of(st.just(self.offset), st.integers(0, length + 10)), "at")
            size = data.draw(st.one_of(st.integers(0, 300_000), st.just(MAX),
                                       st.just(MAX + 1), st.just(length - self.offset)),
                             "size")  # fmt: skip
            size = max(size, 0)
            status, offset = self.expected(at, size)
            response = client.patch(
                f"/uploads/{self.token}",
                data=self.chunk(at, size),
                environ_overrides={"CONTENT_LENGTH": str(size)},
                headers={"X-CSRF-Token": csrf, "Upload-Offset": str(at),
                         "Content-Type": "application/octet-stream"},
            )  # fmt: skip
            assert response.status_code == status, response.get_json()
            answer = response.get_json()
            if status == 200:
                self.offset = offset
                assert answer["offset"] == offset
                assert answer.get("complete", False) == (offset == length)
            elif status in (409, 413):
                assert answer["offset"] == offset
            assert answer.get("error", "") or status == 200

        @rule(garbage=st.binary(min_size=1, max_size=5000))
        def crash_after_a_write(self, garbage: bytes) -> None:
            if self.offset == length:
                return
            with self.path().open("ab") as fh:
                fh.write(garbage)

        def path(self) -> Path:
            return uploads.part_path(data_dir, self._id())

        def _id(self) -> str:
            digest = hashlib.sha256(bytes.fromhex(self.token)).digest()
            db = app.extensions["portal.source"].db
            with db.session() as session:
                found = session.scalar(select(Upload.id).where(Upload.token_digest == digest))
            assert found is not None
            return str(found)

        @invariant()
        def the_server_agrees_with_the_model(self) -> None:
            status = client.get(f"/uploads/{self.token}").get_json()
            assert status == {"offset": self.offset, "length": length,
                              "complete": self.offset == length}  # fmt: skip
            assert self.path().read_bytes()[: self.offset] == body[: self.offset]

    return Protocol


@pytest.mark.slow
def test_random_chunk_sequences_follow_the_protocol(sqlite_app, team_keys):
    body, _ = attachment_envelope(team_keys, os.urandom(700_000))
    client = sqlite_app.test_client()
    machine = make_machine(client, sqlite_app, body)
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=25, stateful_step_count=12, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )  # fmt: skip
