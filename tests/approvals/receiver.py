"""A webhook receiver for the tests, run as its own process on 127.0.0.1.

    python receiver.py SECRET RECORD.jsonl [--fail-first N]

Prints the port it listens on, then verifies every POST with the shipped
``bandmaster.approvals.verify_signature`` and appends what it got to RECORD.jsonl (one JSON
object per request: verified, error, headers, body). Answers 200 when the signature holds,
401 when it does not, and 503 to the first N requests (a receiver that is restarting).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bandmaster.approvals import verify_signature
from bandmaster.errors import InvalidSignature


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("secret")
    parser.add_argument("record", type=Path)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    lock = threading.Lock()
    seen = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                seen["requests"] += 1
                failing = seen["requests"] <= args.fail_first
            error = None
            try:
                verify_signature(args.secret, dict(self.headers.items()), body)
            except InvalidSignature as exc:
                error = str(exc)
            entry = {
                "verified": error is None,
                "error": error,
                "answered": 503 if failing else (200 if error is None else 401),
                "headers": dict(self.headers.items()),
                "body": body.decode(),
            }
            with lock, args.record.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            self.send_response(entry["answered"])
            self.end_headers()
            self.wfile.write(b"ok" if entry["answered"] == 200 else b"no")

        def log_message(self, format: str, *log_args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
