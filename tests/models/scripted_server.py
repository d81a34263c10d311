"""A scripted OpenAI- and Anthropic-compatible HTTP server, run as a separate process.

    python tests/models/scripted_server.py [--port 0]

prints ``PORT <n>`` on stdout once it listens on 127.0.0.1 (port 0: the OS picks a free one).

Endpoints:

* ``POST /v1/chat/completions``: OpenAI chat-completions shape.
* ``POST /v1/messages``: Anthropic messages shape.
* ``POST /control``: ``{"reset": true}`` forgets scripts and counts; ``{"models": {name: {"queue":
  [behaviour, ...], "default": behaviour, "limits": {...}}}}`` scripts models (merged into the
  current script). A model's queue is consumed one behaviour per request; then its default
  (else ``"ok"``) applies.
* A model's ``limits`` are enforced like a provider's quota: ``{"rpm": R, "concurrency": C,
  "burst": B, "retry_after": S, "delay": D}`` (each optional). A request is answered 429 with
  ``Retry-After: S`` (default 1) when, counting it, more than ``R / 60 + B`` accepted requests
  (``B`` default 2) arrived in the last second (the rpm scaled down to a 1-second sliding
  window: a client that bursts, or several workers each sending at the full rate, exceed it;
  ``B`` absorbs a request or two of network and scheduling jitter), or when ``C`` accepted
  requests are already in flight (arrived and not yet answering). An accepted request answers
  after ``D`` seconds (default 0). Refused requests are logged with behaviour ``"429"`` and
  ``"limited": true`` and count toward neither limit.
* ``GET /stats``: ``{"total": n, "models": {model: {path: count}}, "log": [...]}`` where ``log``
  lists every request as ``{"t", "path", "model", "behaviour", "traceparent", "text"}`` in
  arrival order (``traceparent``: the W3C trace-context header the client sent, or null;
  ``text``: the last user message, which tells whose request it was), and ``last`` maps each
  model to the JSON body of its latest request.

A behaviour is a string or an object with ``kind`` and options:

* ``ok``: ``text`` (default ``"echo: <last user message>"``) or ``json`` (any value, sent as its
  JSON text); ``served_model`` (the ``model`` field of the answer, default the requested one);
  ``usage``: ``[input_tokens, output_tokens]`` (default ``[11, 7]``); ``logprobs``:
  ``[[token, logprob], ...]`` returned as OpenAI's ``choices[0].logprobs.content``.
* ``slow``: sleep ``delay`` seconds (default 5), then answer as ``ok``.
* ``429``: with ``Retry-After: <retry_after>`` (default 1) unless ``retry_after`` is null.
* ``500``, ``401``, ``400``: an error body in the provider's shape.
* ``malformed``: 200 with a body that is not JSON.
* ``wrong_schema``: 200, a well-formed answer whose text is valid JSON of an unexpected shape
  (``{"unexpected": true}``; set ``json`` to choose another value).
* ``wrong_shape``: 200 with valid JSON that is not a chat-completion/message object.

A request with ``"stream": true`` gets an ``ok`` answer as server-sent events in the
provider's wire format (OpenAI ``chat.completion.chunk`` events then ``[DONE]``; Anthropic
``message_start`` ... ``message_stop``), chunked. Stream options of ``ok``: ``chunks`` (the
text's pieces, default its words with their spaces), ``chunk_delay`` (seconds before each
piece after the first, default 0), ``cut_after`` (send that many pieces, then drop the
connection mid-body: the stream fails part-way).

Every behaviour takes ``keep_alive`` (default false): by default responses say
``Connection: close``, so a client's connection pool holds no idle sockets after a test.

Standard library only, so that the process is independent of the code under test.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

_lock = threading.Lock()
_scripts: dict[str, dict[str, Any]] = {}
_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_log: list[dict[str, Any]] = []
_last_bodies: dict[str, Any] = {}
_ids = 0
_accepted: dict[str, deque[float]] = defaultdict(deque)  # arrival times of the last second
_in_flight: dict[str, int] = defaultdict(int)


def _normalise(behaviour: Any) -> dict[str, Any]:
    if isinstance(behaviour, str):
        return {"kind": behaviour}
    if isinstance(behaviour, dict) and "kind" in behaviour:
        return dict(behaviour)
    raise ValueError(f"bad behaviour {behaviour!r}")


def _next_behaviour(
    model: str, path: str, body: dict[str, Any], traceparent: str | None = None
) -> dict[str, Any]:
    global _ids
    with _lock:
        _last_bodies[model] = body
        script = _scripts.get(model, {})
        now = time.time()
        limits = script.get("limits")
        refused = _over_limits(model, limits, now) if limits else None
        if refused is not None:
            behaviour = refused
        else:
            queue = script.get("queue", [])
            behaviour = queue.pop(0) if queue else script.get("default", {"kind": "ok"})
            if limits:
                _accepted[model].append(now)
                _in_flight[model] += 1
                behaviour = {**behaviour, "_counted": True, "_delay": float(limits.get("delay", 0.0))}
        _counts[model][path] += 1
        _ids += 1
        _log.append(
            {
                "t": now,
                "path": path,
                "model": model,
                "behaviour": behaviour["kind"],
                "traceparent": traceparent,
                "text": _last_user_text(body),  # which caller sent it: tests match requests to runs
                "limited": refused is not None,
            }
        )
        return {**behaviour, "_id": _ids}


def _over_limits(model: str, limits: dict[str, Any], now: float) -> dict[str, Any] | None:
    """The 429 answering a request over the model's scripted limits, or None (under ``_lock``)."""
    recent = _accepted[model]
    while recent and recent[0] <= now - 1.0:
        recent.popleft()
    rpm, concurrency = limits.get("rpm"), limits.get("concurrency")
    over_rate = rpm is not None and len(recent) + 1 > float(rpm) / 60.0 + int(limits.get("burst", 2))
    over_concurrency = concurrency is not None and _in_flight[model] >= int(concurrency)
    if over_rate or over_concurrency:
        return {"kind": "429", "retry_after": limits.get("retry_after", 1)}
    return None


def _answered(model: str, behaviour: dict[str, Any]) -> None:
    """A request accepted under the limits starts answering: no longer in flight."""
    if behaviour.get("_counted"):
        with _lock:
            _in_flight[model] -= 1


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # Anthropic content blocks
                return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
            return str(content)
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    keep_alive = False  # per response; see the ``keep_alive`` option

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read /stats, not the access log

    # --- plumbing ----------------------------------------------------------------------

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if not self.keep_alive:
                self.send_header("Connection", "close")
                self.close_connection = True
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (timeout): nothing to answer

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    # --- endpoints ----------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/stats":
            with _lock:
                stats = {
                    "total": len(_log),
                    "models": {m: dict(paths) for m, paths in _counts.items()},
                    "log": list(_log),
                    "last": dict(_last_bodies),
                }
            self._send_json(200, stats)
        elif self.path == "/health":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        try:
            body = self._read_json()
        except (ValueError, OSError):
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        if self.path == "/control":
            self._control(body)
        elif self.path in (OPENAI_PATH, ANTHROPIC_PATH):
            self._model(body)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _control(self, body: dict[str, Any]) -> None:
        try:
            with _lock:
                if body.get("reset"):
                    _scripts.clear()
                    _counts.clear()
                    _log.clear()
                    _last_bodies.clear()
                    _accepted.clear()
                    _in_flight.clear()
                for model, script in (body.get("models") or {}).items():
                    entry = _scripts.setdefault(model, {})
                    if "queue" in script:
                        entry["queue"] = [_normalise(b) for b in script["queue"]]
                    if "default" in script:
                        entry["default"] = _normalise(script["default"])
                    if "limits" in script:
                        entry["limits"] = dict(script["limits"] or {})
        except ValueError as exc:
            self._send_json(400, {"error": {"message": str(exc)}})
            return
        self._send_json(200, {"ok": True})

    def _model(self, body: dict[str, Any]) -> None:
        anthropic = self.path == ANTHROPIC_PATH
        model = str(body.get("model", ""))
        behaviour = _next_behaviour(model, self.path, body, self.headers.get("traceparent"))
        self.keep_alive = bool(behaviour.get("keep_alive", False))
        kind = behaviour["kind"]
        if behaviour.get("_delay"):
            time.sleep(behaviour["_delay"])
        _answered(model, behaviour)
        if kind == "slow":
            time.sleep(float(behaviour.get("delay", 5.0)))
            kind = "ok"
        if kind in ("ok", "wrong_schema"):
            if "json" in behaviour:
                text = json.dumps(behaviour["json"])
            elif kind == "wrong_schema":
                text = json.dumps({"unexpected": True})
            else:
                text = str(behaviour.get("text", f"echo: {_last_user_text(body)}"))
            served = str(behaviour.get("served_model", model))
            usage = behaviour.get("usage", [11, 7])
            if body.get("stream"):
                self._stream(behaviour, served, text, usage, anthropic)
                return
            if anthropic:
                self._send_json(200, _anthropic_answer(behaviour["_id"], served, text, usage))
            else:
                body = _openai_answer(behaviour["_id"], served, text, usage)
                if "logprobs" in behaviour:  # [[token, logprob], ...] as OpenAI returns them
                    content = [
                        {"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                        for t, lp in behaviour["logprobs"]
                    ]
                    body["choices"][0]["logprobs"] = {"content": content}
                self._send_json(200, body)
        elif kind == "429":
            retry_after = behaviour.get("retry_after", 1)
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            self._error(429, "rate_limit_error", "slow down", anthropic, headers)
        elif kind in ("500", "401", "400"):
            kinds = {"500": "api_error", "401": "authentication_error", "400": "invalid_request_error"}
            self._error(int(kind), kinds[kind], f"scripted {kind}", anthropic)
        elif kind == "malformed":
            self._send(200, b'{"id": "broken", "choices": [ this is not json')
        elif kind == "wrong_shape":
            self._send_json(200, {"hello": "world"})
        else:
            self._error(500, "api_error", f"unknown scripted behaviour {kind!r}", anthropic)

    def _stream(
        self, behaviour: dict[str, Any], model: str, text: str, usage: list[int], anthropic: bool
    ) -> None:
        pieces = behaviour.get("chunks") or [w for w in text.replace(" ", " \0").split("\0") if w]
        cut_after = behaviour.get("cut_after")
        delay = float(behaviour.get("chunk_delay", 0.0))
        events = _anthropic_events if anthropic else _openai_events
        head, body, tail = events(behaviour["_id"], model, pieces, usage)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in head:
                self._chunk(event)
            for number, event in enumerate(body):
                if cut_after is not None and number >= cut_after:
                    self.wfile.flush()
                    return  # no terminating chunk: the client sees the body cut short
                if number and delay:
                    time.sleep(delay)
                self._chunk(event)
            for event in tail:
                self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass  # the client went away (it stopped reading, or was killed)

    def _chunk(self, event: str) -> None:
        data = event.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error(
        self, status: int, kind: str, message: str, anthropic: bool, headers: dict[str, str] | None = None
    ) -> None:
        if anthropic:
            body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "code": str(status)}}
        self._send_json(status, body, headers)


def _openai_answer(number: int, model: str, text: str, usage: list[int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }


def _anthropic_answer(number: int, model: str, text: str, usage: list[int]) -> dict[str, Any]:
    return {
        "id": f"msg_{number}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def _openai_events(
    number: int, model: str, pieces: list[str], usage: list[int]
) -> tuple[list[str], list[str], list[str]]:
    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk", "created": 0, "model": model}
        return "data: " + json.dumps({**chunk, "choices": choices, **extra}) + "\n\n"

    head = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    body = [event([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in pieces]
    usage_body = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    tail = [
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        event([], usage=usage_body),
        "data: [DONE]\n\n",
    ]
    return head, body, tail


def _anthropic_events(
    number: int, model: str, pieces: list[str], usage: list[int]
) -> tuple[list[str], list[str], list[str]]:
    def event(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: " + json.dumps({"type": kind, **data}) + "\n\n"

    message: dict[str, Any] = {
        "id": f"msg_{number}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": 0},
    }
    head = [
        event("message_start", message=message),
        event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    ]
    body = [event("content_block_delta", index=0, delta={"type": "text_delta", "text": p}) for p in pieces]
    tail = [
        event("content_block_stop", index=0),
        event(
            "message_delta",
            delta={"stop_reason": "end_turn", "stop_sequence": None},
            usage={"output_tokens": usage[1]},
        ),
        event("message_stop"),
    ]
    return head, body, tail


class Server(ThreadingHTTPServer):
    daemon_threads = True  # slow answers must not hold up shutdown
    request_queue_size = 128


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
