#!/usr/bin/python3
"""A real SMTP server for development and tests that delivers nowhere.

Every message accepted is written as one RFC 5322 file, ``<utc-timestamp>-<random>.eml``,
into ``--dir``. The file is written under a hidden temporary name, flushed to disk and then
renamed, so anyone listing ``*.eml`` only ever sees complete messages. File names sort in
arrival order.

Three trace headers are prepended to each stored message so tests can check the SMTP
envelope, not only the headers the sender wrote: ``X-Peer``, ``X-MailFrom`` and
``X-RcptTo`` (the same names aiosmtpd's own Mailbox handler uses).

Any AUTH credentials are accepted (without TLS), so a client configured with a user and a
password works too. This is a sink: never expose it beyond localhost.

Run with Debian's interpreter, which has python3-aiosmtpd:

    /usr/bin/python3 infra/smtp-sink.py --host 127.0.0.1 --port 1025 --dir .run/mail
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger("smtp-sink")


class SaveToDir:
    """aiosmtpd handler: one .eml file per accepted message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        newline = b"\r\n" if b"\r\n" in content[:4096] else b"\n"
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        trace = [
            b"X-Peer: " + peer.encode("ascii", "replace"),
            b"X-MailFrom: " + (envelope.mail_from or "").encode("utf-8"),
            b"X-RcptTo: " + ", ".join(envelope.rcpt_tos).encode("utf-8"),
        ]
        data = newline.join(trace) + newline + content

        name = self._unique_name()
        # Writing is quick, but it is still blocking I/O: keep it off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._write, name, data)
        log.info(
            "stored %s from=%s to=%s bytes=%d",
            name,
            envelope.mail_from,
            ",".join(envelope.rcpt_tos),
            len(data),
        )
        return f"250 OK stored as {name}"

    def _unique_name(self) -> str:
        now = datetime.datetime.now(datetime.timezone.utc)
        return f"{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.eml"

    def _write(self, name: str, data: bytes) -> None:
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # rename() within one directory is atomic: readers see all of the file or nothing.
        os.rename(tmp, final)


def accept_any_credentials(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=True)


async def serve(host: str, port: int, directory: Path) -> None:
    loop = asyncio.get_running_loop()
    handler = SaveToDir(directory)

    def factory() -> SMTP:
        return SMTP(
            handler,
            # A fixed name: the default calls socket.getfqdn(), which can stall on DNS.
            hostname="smtp-sink.localhost",
            enable_SMTPUTF8=True,
            authenticator=accept_any_credentials,
            auth_require_tls=False,
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d, writing to %s", host, port, directory)
    async with server:
        await stop.wait()
    log.info("stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", default=".run/mail", help="where the .eml files go")
    parser.add_argument(
        "--verbose", action="store_true", help="log every SMTP command (aiosmtpd's mail.log)"
    )
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # aiosmtpd logs every command at INFO; under a load test that is megabytes of noise.
    # Its own deprecation warnings (triggered by its AUTH code, not ours) go too.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(args.host, args.port, directory))
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
