"""The JSON API of a real ``bandmaster server`` process: every endpoint, every error status."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid

from bandmaster.observe.stats import compute

from .conftest import Server


def _error(response: object, status: int, code: str) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 20  # says what is wrong and how to fix it
    return str(body["error"]["message"])


def _start(server: Server, workflow: str, value: object, **headers: str) -> dict[str, object]:
    with server.client("writer", **headers) as http:
        response = http.post("/api/v1/runs", json={"workflow": workflow, "input": value})
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def test_health_ready_metrics_and_docs(server: Server) -> None:
    with server.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["schema"] >= 4
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "python_info" in metrics.text
        assert 'bandmaster_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/api/v1/runs", "/api/v1/runs/{run_id}/events", "/api/v1/approvals"} <= set(paths)


def test_start_and_get_a_run_with_its_steps(server: Server) -> None:
    started = _start(server, "calc", 21)
    assert started["workflow"] == "calc"
    assert started["created"] is True
    run = server.wait_status(str(started["id"]), {"completed"})
    assert run["input"] == [21]
    assert run["output"] == 42
    steps = run["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("double", "completed")]  # type: ignore[index, union-attr]


def test_list_runs_filters_and_pages(server: Server) -> None:
    ids = [str(_start(server, "calc", n)["id"]) for n in range(3)]
    for run_id in ids:
        server.wait_status(run_id, {"completed"})
    with server.client("reader") as http:
        first = http.get(
            "/api/v1/runs", params={"workflow": "calc", "status": "completed", "limit": 2}
        ).json()
        assert len(first["runs"]) == 2
        assert first["next_offset"] == 2
        assert all(r["workflow"] == "calc" and r["status"] == "completed" for r in first["runs"])
        second = http.get("/api/v1/runs", params={"workflow": "calc", "limit": 2, "offset": 2}).json()
        seen = {r["id"] for r in first["runs"] + second["runs"]}
        assert len(seen) == len(first["runs"]) + len(second["runs"])
        assert http.get("/api/v1/runs", params={"status": "bogus"}).status_code == 422


def test_list_runs_searches_input_and_ids_by_time_and_order(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    needle = _start(server, "broken", f"order {tag} <script>alert(1)</script>")
    plain = _start(server, "calc", 7)
    for run in (needle, plain):
        server.wait_status(str(run["id"]), {"completed", "failed"})
    with server.client("reader") as http:

        def ids(**params: object) -> list[str]:
            response = http.get("/api/v1/runs", params={"limit": 500, **params})
            assert response.status_code == 200, response.text
            return [r["id"] for r in response.json()["runs"]]

        assert ids(search=f"{tag} <SCRIPT>") == [needle["id"]]  # input text, any case
        assert ids(search=str(plain["id"])[4:12]) == [plain["id"]]  # part of an id
        assert ids(id_prefix=str(plain["id"])) == [plain["id"]]
        failed = http.get("/api/v1/runs", params={"search": tag}).json()["runs"][0]
        assert failed["error"]["type"].endswith("ValueError")  # the list carries the error column's data
        created = http.get(f"/api/v1/runs/{plain['id']}").json()["created_at"]
        assert plain["id"] in ids(created_after=created, workflow="calc")
        assert plain["id"] not in ids(created_before=created, workflow="calc")
        stamp = time.time() + 3600  # Unix seconds work too
        assert ids(created_after=stamp) == []
        newest, oldest = ids(workflow="calc"), ids(workflow="calc", order="oldest")
        assert newest == oldest[::-1]
        assert len(ids(order="longest")) == len(ids())
        _error(http.get("/api/v1/runs", params={"order": "sideways"}), 422, "invalid_input")
        _error(http.get("/api/v1/runs", params={"created_after": "yesterday"}), 422, "invalid_input")
        _error(http.get("/api/v1/runs", params={"search": "x" * 201}), 422, "invalid_input")


def test_openapi_has_a_bearer_scheme_operation_ids_and_error_shapes(server: Server) -> None:
    with server.client() as http:
        spec = http.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+[A-Za-z]*", i) for i in ids), ids  # ours, not FastAPI's generated
    assert {"listRuns", "startRun", "getRun", "decideApproval", "getStats", "health"} <= set(ids)
    error_ref = "#/components/schemas/ErrorBody"
    for path, method, op in operations:
        if path.startswith("/api/v1"):
            assert op["security"] == [{"token": []}], (path, method)
            for status in ("401", "403", "422", "429", "500"):
                content = op["responses"][status]["content"]["application/json"]["schema"]
                assert content == {"$ref": error_ref}, (path, method, status)
    body = spec["components"]["schemas"]["ErrorBody"]
    assert body["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    with server.client() as http:  # the documented shape is the one answered
        missing = http.get("/api/v1/runs")
    assert set(missing.json()) == {"error"}
    assert set(missing.json()["error"]) == {"code", "message"}


def test_idempotency_key_is_the_run_id(server: Server) -> None:
    key = f"order-{uuid.uuid4().hex}"
    with server.client("writer", **{"Idempotency-Key": key}) as http:
        first = http.post("/api/v1/runs", json={"workflow": "calc", "input": 5})
        again = http.post("/api/v1/runs", json={"workflow": "calc", "input": 5})
        other = http.post("/api/v1/runs", json={"workflow": "calc", "input": 6})
    assert first.status_code == 201
    assert first.json()["id"] == key
    assert again.status_code == 200
    assert again.json()["id"] == key
    assert again.json()["created"] is False
    assert again.headers["Location"] == f"/api/v1/runs/{key}"
    _error(other, 409, "idempotency_conflict")
    with server.client("writer") as http:
        body = {"workflow": "calc", "input": 5}
        _error(
            http.post("/api/v1/runs", json=body, headers={"Idempotency-Key": ""}), 400, "bad_idempotency_key"
        )
        too_long = http.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k" * 201})
        _error(too_long, 422, "invalid_input")
    with sqlite3.connect(server.db) as conn:
        count, stored = conn.execute("SELECT COUNT(*), MAX(input) FROM runs WHERE id = ?", (key,)).fetchone()
    assert count == 1
    assert json.loads(stored) == [5]


def test_bad_start_requests(server: Server) -> None:
    with server.client("writer") as http:
        _error(http.post("/api/v1/runs", json={"workflow": "nope", "input": 1}), 404, "workflow_not_found")
        _error(http.post("/api/v1/runs", json={"workflow": "calc", "input": "abc"}), 422, "invalid_input")
        _error(http.post("/api/v1/runs", json={"input": 1}), 422, "invalid_input")
        broken = http.post("/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"})
        _error(broken, 422, "invalid_input")
        _error(http.get("/api/v1/runs/does-not-exist"), 404, "run_not_found")
        _error(http.delete("/api/v1/runs"), 405, "method_not_allowed")
        _error(http.get("/api/v2/runs"), 404, "not_found")


def test_token_last_use_is_recorded(server: Server) -> None:
    with server.client("reader") as http:
        assert http.get("/api/v1/runs", params={"limit": 1}).status_code == 200
    with sqlite3.connect(server.db) as conn:
        used = conn.execute("SELECT last_used_at FROM api_tokens WHERE name = 'reader'").fetchone()[0]
        never = conn.execute("SELECT last_used_at FROM api_tokens WHERE name = 'revoked'").fetchone()[0]
    assert used is not None
    assert never is None


def test_authentication_and_scopes(server: Server) -> None:
    with server.client() as http:
        _error(http.get("/api/v1/runs"), 401, "missing_token")
        _error(
            http.get("/api/v1/runs", headers={"Authorization": "Basic abc"}), 401, "malformed_authorization"
        )
        wrong = server.tokens["alice"][:-4] + "AAAA"
        _error(http.get("/api/v1/runs", headers={"Authorization": f"Bearer {wrong}"}), 401, "invalid_token")
        revoked = {"Authorization": f"Bearer {server.tokens['revoked']}"}
        _error(http.get("/api/v1/runs", headers=revoked), 401, "invalid_token")
    with server.client("reader") as http:
        assert http.get("/api/v1/runs").status_code == 200
        _error(http.post("/api/v1/runs", json={"workflow": "calc", "input": 1}), 403, "missing_scope")
        _error(http.put("/api/v1/models/intent", json={"weights": {"production": 1.0}}), 403, "missing_scope")
        _error(http.post("/api/v1/approvals/x/decision", json={"action": "approve"}), 403, "missing_scope")


def test_size_limits(server: Server) -> None:
    with server.client("writer") as http:
        big = {"workflow": "calc", "input": "x" * 1_100_000}
        _error(http.post("/api/v1/runs", json=big), 413, "payload_too_large")

        def chunks() -> object:
            for _ in range(30):
                yield b"x" * 50_000

        streamed = http.post("/api/v1/runs", content=chunks(), headers={"content-type": "application/json"})
        _error(streamed, 413, "payload_too_large")
        _error(http.get("/api/v1/runs", headers={"X-Padding": "p" * 20_000}), 431, "headers_too_large")
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE input LIKE '%xxxxxxxx%'").fetchone()[0] == 0


def test_rate_limit_per_token(server: Server) -> None:
    with server.client("slowpoke") as http:
        responses = [http.get("/api/v1/runs", params={"limit": 1}) for _ in range(3)]
    assert responses[0].status_code == 200
    for limited in responses[1:]:
        _error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["Retry-After"]) <= 10
    with server.client("reader") as http:  # other tokens are not affected
        assert http.get("/api/v1/runs", params={"limit": 1}).status_code == 200


def test_signal_and_cancel(server: Server) -> None:
    waiting = str(_start(server, "waiter", "a")["id"])
    server.wait_status(waiting, {"waiting"})
    with server.client("writer") as http:
        sent = http.post(f"/api/v1/runs/{waiting}/signals", json={"name": "go", "payload": "yes"})
        assert sent.status_code == 202
        assert server.wait_status(waiting, {"completed"})["output"] == "a:yes"
        late = http.post(f"/api/v1/runs/{waiting}/signals", json={"name": "go", "payload": 1})
        _error(late, 409, "run_finished")
        _error(http.post("/api/v1/runs/nope/signals", json={"name": "go"}), 404, "run_not_found")
        _error(http.post(f"/api/v1/runs/{waiting}/signals", json={"payload": 1}), 422, "invalid_input")

        doomed = str(_start(server, "waiter", "b")["id"])
        server.wait_status(doomed, {"waiting"})
        cancelled = http.post(f"/api/v1/runs/{doomed}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert server.wait_status(doomed, {"cancelled"})["status"] == "cancelled"
        _error(http.post("/api/v1/runs/nope/cancel"), 404, "run_not_found")


def test_approvals_are_decided_as_the_tokens_principal(server: Server) -> None:
    run_id = str(_start(server, "reviewed", "Mrs. Garcia was charged twice")["id"])
    server.wait_status(run_id, {"waiting"})
    with server.client("reader") as http:
        pending = [a for a in http.get("/api/v1/approvals").json() if a["run_id"] == run_id]
    assert pending
    assert pending[0]["payload"] == {"redacted": "<PERSON> was charged twice"}
    assert pending[0]["approvers"] == ["alice", "reviewer"]
    with server.client("mallory") as http:  # has the scope, but is not on the allow-list
        _error(
            http.post(f"/api/v1/approvals/{run_id}/decision", json={"action": "approve"}),
            403,
            "not_an_approver",
        )
    with server.client("alice") as http:
        decided = http.post(
            f"/api/v1/approvals/{run_id}/decision", json={"action": "override", "comment": "not PHI"}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["by"] == "alice"
        assert decided.json()["action"] == "override"
        assert server.wait_status(run_id, {"completed"})["output"] == "override by alice: not PHI"
        again = http.post(f"/api/v1/approvals/{run_id}/decision", json={"action": "approve"})
        assert again.status_code == 409
        _error(
            http.post("/api/v1/approvals/nope/decision", json={"action": "approve"}),
            404,
            "approval_not_found",
        )
        done = http.get("/api/v1/approvals", params={"status": "decided"}).json()
        assert any(a["run_id"] == run_id and a["decision"]["by"] == "alice" for a in done)
    with sqlite3.connect(server.db) as conn:
        audit = conn.execute("SELECT who, event FROM approval_audit WHERE run_id = ?", (run_id,)).fetchall()
        admin = conn.execute(
            "SELECT principal FROM server_audit WHERE action = 'approval.decide' AND target = ?", (run_id,)
        ).fetchall()
    assert ("mallory", "refused") in audit
    assert ("alice", "decided") in audit
    assert admin == [("alice",)]
    with server.client("alice") as http:
        trail = http.get("/api/v1/audit").json()
        assert any(
            e["action"] == "approval.decide" and e["target"] == run_id and e["principal"] == "alice"
            for e in trail
        )
    with server.client("mallory") as http:
        _error(http.get("/api/v1/audit"), 403, "missing_scope")


def test_models_read_and_change_weights(server: Server) -> None:
    with server.client("reader") as http:
        aliases = http.get("/api/v1/models").json()
        intent = next(a for a in aliases if a["alias"] == "intent")
        assert intent["versions"] == {"production": "intent-small", "canary": "intent-large"}
        _error(http.get("/api/v1/models/nope"), 404, "unknown_alias")
    with server.client("alice") as http:
        bad = http.put("/api/v1/models/intent", json={"weights": {"production": 0.9, "canary": 0.6}})
        _error(bad, 422, "invalid_model_change")
        changed = http.put("/api/v1/models/intent", json={"weights": {"production": 0.5, "canary": 0.5}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["weights"] == {"production": 0.5, "canary": 0.5}
        assert changed.json()["history"][0]["changed_by"] == "alice"
        http.put("/api/v1/models/intent", json={"weights": {"production": 1.0, "canary": 0.0}})


def test_stats_are_the_journal_statistics_of_observe_stats(server: Server) -> None:
    run_id = str(_start(server, "classify", "I was charged twice")["id"])
    assert server.wait_status(run_id, {"completed"})["output"] == "billing"
    with server.client("reader") as http:
        stats = http.get("/api/v1/stats", params={"since": "1h"}).json()
        mine = http.get("/api/v1/stats", params={"workflow": "classify"}).json()
        by_unix_time = http.get("/api/v1/stats", params={"since": str(time.time() - 3600)}).json()
    assert stats["runs"] >= 1
    assert stats["since"] is not None
    classify = next(w for w in stats["workflows"] if w["workflow"] == "classify")
    assert classify["by_status"]["completed"] >= 1
    assert classify["cost"] > 0
    step = next(s for s in stats["step_stats"] if s["name"] == "intent" and s["kind"] == "model")
    assert step["calls"] >= 1
    assert 0 < step["p50"] <= step["p99"]
    assert step["cost"] > 0  # cost per step, beside cost per model and per workflow
    model = next(m for m in stats["models"] if m["model"] in ("intent-small", "intent-large"))
    assert model["alias"] == "intent"
    assert model["calls"] >= 1
    assert model["cost"] > 0
    assert model["input_tokens"] >= 12
    # One implementation: the API answers exactly what ``bandmaster stats --json`` computes.
    same = compute(server.db, workflow="classify").model_dump(mode="json")
    assert mine["workflow"] == "classify"
    assert [w["workflow"] for w in mine["workflows"]] == ["classify"]
    for key in ("runs", "steps", "step_stats", "models", "workflows", "days"):
        assert mine[key] == same[key], key
    assert by_unix_time["runs"] == stats["runs"]


def test_stats_refuse_a_bad_since(server: Server) -> None:
    with server.client("reader") as http:
        for since in ("yesterday", "-5m", str(time.time() + 3600), "nan"):
            _error(http.get("/api/v1/stats", params={"since": since}), 422, "invalid_input")
        assert http.get("/api/v1/stats", params={"workflow": "no-such"}).json()["runs"] == 0


def test_event_stream_follows_a_run_to_its_end(server: Server) -> None:
    run_id = str(_start(server, "slow", 3)["id"])
    events: list[tuple[str, dict[str, object]]] = []
    with server.client("reader") as http, http.stream("GET", f"/api/v1/runs/{run_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end"
    assert events[-1][1]["output"] == 6
    statuses = [e["status"] for k, e in events if k == "status"]
    assert statuses[0] in ("running", "waiting", "queued")
    assert statuses[-1] == "completed"
    doubles = {
        e["seq"] for k, e in events if k == "step" and e["name"] == "double" and e["status"] == "completed"
    }
    assert len(doubles) == 3
    with server.client("reader") as http:
        _error(http.get("/api/v1/runs/nope/events"), 404, "run_not_found")


def test_deciding_an_approval_of_a_cancelled_run_is_a_conflict(server: Server) -> None:
    run_id = str(_start(server, "reviewed", "Mrs. Garcia, cancelled")["id"])
    server.wait_status(run_id, {"waiting"})
    with server.client("alice") as http:
        assert http.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
        late = http.post(f"/api/v1/approvals/{run_id}/decision", json={"action": "approve"})
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] in ("run_finished", "already_decided")


def test_a_run_starts_on_the_version_asked_for_else_the_newest(server: Server) -> None:
    with server.client("writer") as http:
        asked = http.post("/api/v1/runs", json={"workflow": "versioned", "input": "a", "version": "1"})
        newest = http.post("/api/v1/runs", json={"workflow": "versioned", "input": "b"})
        missing = http.post("/api/v1/runs", json={"workflow": "versioned", "input": "c", "version": "3"})
    message = _error(missing, 404, "workflow_not_found")
    assert "no workflow 'versioned@3'" in message
    assert "versioned@1, versioned@2" in message
    for started, expected in ((asked, ("1", "v1:a")), (newest, ("2", "v2:b"))):
        assert started.status_code == 201, started.text
        run = server.wait_status(started.json()["id"], {"completed"})
        assert (run["version"], run["output"]) == expected
