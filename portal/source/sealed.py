"""``POST /report/sealed``: an envelope sealed in the browser (see docs/ARCHITECTURE.md).

The body is the envelope itself (``application/octet-stream``, bounded by
the configured limit); the headers carry the CSRF token, the lookup token
(64 hex digits) and the reply public key (base64). The answer is ``201``
with the fingerprints of the keys it was sealed to, or a 4xx/503 with a
message for the submitter, and then nothing was stored.
"""

from __future__ import annotations

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
    accept(body, header, token, reply_key, SealedBy.BROWSER)
    return jsonify(fingerprints=current.fingerprints), 201
