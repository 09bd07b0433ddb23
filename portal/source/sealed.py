"""``POST /report/sealed``: an envelope sealed in the browser (see docs/ARCHITECTURE.md).

The body is the envelope itself (``application/octet-stream``, bounded by
the configured limit); the headers carry the CSRF token, the lookup token
(64 hex digits) and the reply public key (base64). The answer is ``201``
with the fingerprints of the keys it was sealed to, or a 4xx/503 with a
message for the submitter, and then nothing was stored.

``X-Attachments`` (optional) lists the tokens of complete uploads
(``/uploads``, see docs/UPLOADS.md), separated by single spaces: each
becomes a submission of the same thread, stored in the report's
transaction; any problem with any of them stores nothing and keeps them all.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from portal.models import SealedBy
from portal.source import state, upload
from portal.source.intake import accept

bp = Blueprint("sealed", __name__)


@bp.post("/report/sealed")
def submit() -> tuple[Response, int]:
    current = state.current()
    token = upload.lookup_token(request.headers.get("X-Lookup-Token"))
    reply_key = upload.reply_key(request.headers.get("X-Reply-Key"))
    body = request.get_data(cache=False)
    header = upload.check_envelope(body, current.keys, current.config.max_report_bytes)
    tokens = upload.attachment_tokens(
        request.headers.get("X-Attachments"), current.config.max_files
    )
    staged = upload.claim_attachments(
        current.db, current.config, tokens, current.keys, int(time.time())
    )
    accept(body, header, token, reply_key, SealedBy.BROWSER, staged)
    return jsonify(fingerprints=current.fingerprints), 201
