"""The development server (Werkzeug) with its access log off.

Werkzeug's request handler logs every request with the client's address
and the time; this one logs nothing per request, and an error in the
server itself only as a bare line. It is for ``make run`` on a developer's
machine; production runs gunicorn (access log off) behind the onion service.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


class QuietRequestHandler(WSGIRequestHandler):
    """Logs no request line, no address and no time; names no server version."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            log.error("the development server could not handle a request")

    def version_string(self) -> str:
        return "portal"


def serve(app: Flask, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until interrupted."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    server.serve_forever()
