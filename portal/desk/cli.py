"""``portal-desk``: the offline tool that makes keys and opens envelopes, in the manner of age.

It runs on the air-gapped laptop, so nothing on its import path may pull in
Flask, Werkzeug, Jinja2 or SQLAlchemy (a test checks ``sys.modules``). Errors
go to standard error as ``portal-desk: error: ...`` followed by
``portal-desk: hint: ...``; exit status 0 means everything authenticated, 1 a
failure, 2 a usage error, 130 an interrupt.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn

from portal.attachment import AttachmentError
from portal.bundle import BundleError
from portal.desk import commands
from portal.desk.errors import DeskError
from portal.desk.streams import os_error
from portal.envelope import EnvelopeError
from portal.keyfile import KeyFileError
from portal.keys import KeyManifestError

PROG = "portal-desk"
USAGE = """\
Usage:
    portal-desk keygen [--signing] --label LABEL --secret-key FILE [--passphrase-file FILE]
    portal-desk seal --to PUBLIC [--to PUBLIC ...] [-o OUTPUT] [--force] [INPUT]
    portal-desk decrypt --secret-key FILE [--secret-key FILE ...] [--passphrase-file FILE]
                        [-o OUTPUT] [--force] [--terminal] [INPUT]
    portal-desk inspect [--json] [--manifest PUBLIC] [INPUT]
    portal-desk import --store DIR --secret-key FILE [--secret-key FILE ...]
                       [--passphrase-file FILE ...] BUNDLE
    portal-desk cases --store DIR
    portal-desk show --store DIR ID
    portal-desk reply --store DIR (--message TEXT | --message-file FILE)
                      --to PUBLIC [--to PUBLIC ...] ID
    portal-desk return --store DIR --sign-key FILE [--passphrase-file FILE] -o FILE

portal-desk is the reprisals portal's offline tool. On a computer with no
network, it makes the team's keys, opens the envelopes the portal stores, and
keeps the decrypted reports in a local case store.

Commands:
    keygen    Make a key pair. The secret key goes to FILE, encrypted under a
              passphrase (asked twice on the terminal, or the first line of
              --passphrase-file; 12 characters or more). The public entry for
              keys/manifest.json is printed on standard output, its fingerprint
              on standard error. An existing FILE is never overwritten. With
              --signing, the key is the desk's Ed25519 signing key instead of
              an encryption key: its entry goes in the manifest's
              "signing_keys", and `return --sign-key` signs with it.
    seal      Encrypt INPUT to the keys in each PUBLIC file: an entry printed by
              keygen, or a manifest (its active keys).
    decrypt   Decrypt INPUT with the secret key it was sealed to. Exits 0 only if
              all of it authenticated; otherwise no plaintext is written at all.
              An attachment from the portal gives its file alone, written only
              if its size and SHA-256 are right; with -o DIR (a directory) it is
              named attachment-<id> plus a plain extension, never by the name
              the sender gave, which is shown on standard error.
    inspect   Show what an envelope says about itself (sealing path, sizes, the
              key id of each recipient, named from --manifest) and check that it
              is complete. Needs no key.
    import    Check an export bundle from the staff interface, decrypt every
              report in it and keep it in the case store in DIR (created with
              mode 0700), and write every attachment into its case's folder,
              DIR/<case>/attachment-<id>, once its SHA-256 is right. Importing
              a bundle twice changes nothing. Exits 0 only if every item opened
              and is a valid report or attachment, and no attachment a report
              lists is missing or different; each failure is listed, and failed
              items are not acknowledged to the server. Give one
              --passphrase-file for all keys, or one per --secret-key.
    cases     List the cases in the store: first day, country, consent to
              publication, urgency, number of items and of attachment files,
              attachments missing, acts.
    show      Print every item of case ID (or a unique start of it) as text,
              with the path of each attachment.
    reply     Seal a reply (at most 20,000 characters of plain text) to the
              submitter of case ID, with the reply key from their own report,
              and to the team's keys in each PUBLIC file, so the desk can read
              its copy. It waits in the store for the next return bundle.
    return    Write the return bundle to FILE (never replacing a file): it
              acknowledges every item opened since the last return bundle,
              by id and the SHA-256 of the envelope received, and carries the
              pending replies, each reply and the whole bundle signed with the
              signing key in --sign-key (its passphrase asked on the terminal,
              or the first line of --passphrase-file). Upload it in the staff
              interface; the server checks the signature, then deletes those
              envelopes and keeps the replies for the submitters.

Options:
    -o, --output OUTPUT  Write to OUTPUT (created with mode 0600, complete or not
                         at all) instead of standard output; for decrypt, an
                         existing directory (attachments only).
    --force              Replace OUTPUT if it already exists.
    --terminal           Let decrypt show plaintext on a terminal.
    --json               Make inspect print JSON.
    -h, --help           Show this text.

INPUT defaults to standard input and OUTPUT to standard output; "-" means
either. portal-desk never overwrites its input or a key file, never writes an
envelope to a terminal, and writes plaintext to one only with --terminal.

Example:
    $ portal-desk keygen --label "Reprisals desk 2026" --secret-key desk.key > desk.pub
    New passphrase (12 characters or more):
    The same passphrase again:
    portal-desk: fingerprint of 'Reprisals desk 2026': 01234 56789 ...
    $ portal-desk keygen --signing --label "Reprisals desk signing 2026" \
          --secret-key desk-signing.key > desk-signing.pub
    $ portal-desk seal --to desk.pub -o report.sealed report.txt
    $ portal-desk inspect --manifest desk.pub report.sealed
    $ portal-desk decrypt --secret-key desk.key -o report-opened.txt report.sealed
    Passphrase for 'Reprisals desk 2026' (01234 56789 ...):
    $ portal-desk import --store cases --secret-key desk.key export-2026-11-23.tar
    Passphrase for 'Reprisals desk 2026' (01234 56789 ...):
    portal-desk: 3 items imported (3 new cases), 0 already in the store, 0 failed
    $ portal-desk cases --store cases
    $ portal-desk show --store cases 3f9a
    $ portal-desk reply --store cases --to desk.pub --message "We received it." 3f9a
    $ portal-desk return --store cases --sign-key desk-signing.key -o return-2026-11-23.tar
    Passphrase for 'Reprisals desk signing 2026' (98765 43210 ...):

Exit status: 0 on success, 1 on failure, 2 on a usage error, 130 if interrupted.
"""
USAGE_HINT = "Run `portal-desk --help` for the commands and an example."
INTERRUPT_HINT = "Any partly written output file was removed; run the command again."
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "keygen": commands.keygen,
    "seal": commands.seal,
    "decrypt": commands.decrypt,
    "inspect": commands.inspect,
    "import": lambda args: _importing().import_bundle(args),
    "cases": lambda args: _casework().cases(args),
    "show": lambda args: _casework().show(args),
    "reply": lambda args: _replies().reply(args),
    "return": lambda args: _returns().write_return(args),
}
HINTED = (DeskError, EnvelopeError, KeyFileError, KeyManifestError, BundleError, AttachmentError)


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _HelpRequested(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Help(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **_: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS)

    def __call__(self, *_: Any, **__: Any) -> NoReturn:
        raise _HelpRequested


def main(argv: list[str] | None = None) -> int:
    """Run ``portal-desk`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    with _signals():
        try:
            return _run(sys.argv[1:] if argv is None else argv)
        except Interrupted as err:
            _fail("interrupted", INTERRUPT_HINT)
            return 128 + err.signum
        except KeyboardInterrupt:
            _fail("interrupted", INTERRUPT_HINT)
            return 130


def _run(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except _HelpRequested:
        sys.stdout.write(USAGE)
        sys.stdout.flush()
        return 0
    except UsageError as err:
        sys.stderr.write(USAGE + "\n")
        _fail(str(err) if argv else "no command given", USAGE_HINT)
        return 2
    except HINTED as err:
        _fail(str(err), err.hint)
        return 1
    except BrokenPipeError:
        _silence_stdout()
        _fail("the output was closed before everything was written", "Check the pipeline.")
        return 1
    except OSError as err:  # anything not already turned into a DeskError
        failure = os_error(err, str(err.filename) if err.filename else "")
        _fail(str(failure), failure.hint)
        return 1


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action=_Help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keygen = _command(sub, "keygen")
    keygen.add_argument("--signing", action="store_true")
    keygen.add_argument("--label", required=True)
    keygen.add_argument("--secret-key", required=True, metavar="FILE")
    keygen.add_argument("--passphrase-file", metavar="FILE")
    seal = _command(sub, "seal")
    seal.add_argument("--to", action="append", required=True, metavar="PUBLIC")
    _in_out(seal)
    decrypt = _command(sub, "decrypt")
    decrypt.add_argument("--secret-key", action="append", required=True, metavar="FILE")
    decrypt.add_argument("--passphrase-file", metavar="FILE")
    decrypt.add_argument("--terminal", action="store_true")
    _in_out(decrypt)
    inspect = _command(sub, "inspect")
    inspect.add_argument("--json", action="store_true")
    inspect.add_argument("--manifest", metavar="PUBLIC")
    inspect.add_argument("input", nargs="?", metavar="INPUT")
    importer = _command(sub, "import")
    importer.add_argument("--store", required=True, metavar="DIR")
    importer.add_argument("--secret-key", action="append", required=True, metavar="FILE")
    importer.add_argument("--passphrase-file", action="append", metavar="FILE")
    importer.add_argument("bundle", metavar="BUNDLE")
    listing = _command(sub, "cases")
    listing.add_argument("--store", required=True, metavar="DIR")
    showing = _command(sub, "show")
    showing.add_argument("--store", required=True, metavar="DIR")
    showing.add_argument("case", metavar="ID")
    replying = _command(sub, "reply")
    replying.add_argument("--store", required=True, metavar="DIR")
    message = replying.add_mutually_exclusive_group(required=True)
    message.add_argument("--message", metavar="TEXT")
    message.add_argument("--message-file", metavar="FILE")
    replying.add_argument("--to", action="append", required=True, metavar="PUBLIC")
    replying.add_argument("case", metavar="ID")
    returning = _command(sub, "return")
    returning.add_argument("--store", required=True, metavar="DIR")
    returning.add_argument("--sign-key", required=True, metavar="FILE")
    returning.add_argument("--passphrase-file", metavar="FILE")
    returning.add_argument("-o", "--output", required=True, metavar="FILE")
    return parser


def _casework() -> Any:
    """The case store commands, imported only when used: they need SQLAlchemy (never Flask)."""
    from portal.desk import casework

    return casework


def _importing() -> Any:
    """``portal-desk import``, imported only when used (it needs SQLAlchemy, never Flask)."""
    from portal.desk import importing

    return importing


def _returns() -> Any:
    """``portal-desk return``, imported only when used (it needs SQLAlchemy, never Flask)."""
    from portal.desk import returns

    return returns


def _replies() -> Any:
    """``portal-desk reply``, imported only when used (it needs SQLAlchemy, never Flask)."""
    from portal.desk import replies

    return replies


def _command(sub: Any, name: str) -> _Parser:
    parser: _Parser = sub.add_parser(name, add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action=_Help)
    return parser


def _in_out(parser: _Parser) -> None:
    parser.add_argument("-o", "--output", metavar="OUTPUT")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("input", nargs="?", metavar="INPUT")


def _fail(message: str, hint: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n{PROG}: hint: {hint}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    """After a broken pipe, stop Python's exit-time flush from printing a traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Interrupted` while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, _interrupt) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)
