"""gunicorn settings for both interfaces (deploy/README.md): loopback only, quiet, Tor-paced.

Each systemd unit sets PORTAL_BIND (source 127.0.0.1:8080, staff 127.0.0.1:8081)
and may set PORTAL_WORKERS and PORTAL_THREADS. Tor's onion service is the only
client: nothing else may reach these ports, so any address but a loopback one
is refused here before gunicorn listens.
"""

import ipaddress
import os

_host, _, _port = os.environ.get("PORTAL_BIND", "127.0.0.1:8080").rpartition(":")
if not ipaddress.ip_address(_host.strip("[]")).is_loopback or not _port.isdigit():
    raise SystemExit(f"gunicorn.conf.py: PORTAL_BIND must be 127.0.0.1:PORT, not {_host}:{_port}")
bind = [f"{_host}:{_port}"]

# Threads, not processes, carry the slow clients: over Tor a 1 MiB chunk takes
# seconds and a 2 GiB form without JavaScript can take an hour, holding one
# thread (and at most one chunk of memory) the whole time. Two processes of
# eight threads serve sixteen requests at once on a 2-core, 2 GiB server.
worker_class = "gthread"
workers = int(os.environ.get("PORTAL_WORKERS", "2"))
threads = int(os.environ.get("PORTAL_THREADS", "8"))
# With gthread this bounds a stuck worker's silence, not a request: uploads may run long.
timeout = 120
graceful_timeout = 120  # a restart lets requests under way finish first
keepalive = 20  # a Tor round trip is about a second: keep the stream for the next request
max_requests = 0  # never recycle workers: their in-memory rate limits would refill

# Request limits: headers are small (the portal's own are a token and a key);
# bodies are bounded by the portal itself (2 MiB reports, chunked uploads).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# No access log: a request line with its time is an arrival time. Errors go to
# standard error (journald) without a time or an address of their own.
accesslog = None
errorlog = "-"
loglevel = "warning"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "portal: %(levelname)s: %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                   "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        "alembic": {"level": "WARNING"},
    },
}

# There is no proxy: trust no forwarding header from anyone (Tor connects from 127.0.0.1).
forwarded_allow_ips = ""
secure_scheme_headers = {}
proxy_protocol = "off"
control_socket_disable = True  # it would live in the (read-only) home directory
umask = 0o077
