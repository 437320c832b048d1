"""Sessions in headless Chromium over conversations with known answers, sent as OTLP: the list
(24 h by default, other ranges, the user filter, paging) and each transcript (bubbles, latency,
models, tokens, cost, scores, failed turns, links to the traces), every figure equal to the REST
answer rendered by the documented formatting (docs/web-ui.md) and to what was sent."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest
from helpers import (
    make_span,
    new_trace_id,
    records,
    rest_get,
    run_cli,
    score_request,
    trace_request,
    wait_for,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from ui_format import fmt_int, fmt_ms, fmt_score, fmt_usd

pytestmark = pytest.mark.timeout(300)

SERVICE = "chat-app"
FAILURE = "upstream timed out after 2 s"  # the status message of a failed call
MINUTE_NS = 60 * 10**9


@dataclass
class Turn:
    """One trace of a conversation: a root span and its LLM calls (model, in, out, cost)."""

    question: str
    answer: str | None  # None: the call failed
    calls: list[tuple[str, int, int, str]]
    latency_ms: float
    ago_min: float  # start, minutes before now
    scores: dict[str, list[float] | str] = field(default_factory=dict)
    trace_id: bytes = field(default_factory=new_trace_id)


# session id -> (user, turns, oldest first). chat-old lies outside the default 24 h range.
SESSIONS = {
    "chat-ann-1": (
        "ann",
        [
            Turn("Where is my parcel?", "It left Lyon today.", [("model-a", 1200, 34, "0.0261")], 812.5, 50),
            Turn("And the invoice?", None, [("model-a", 15, 0, "0")], 2033.0, 40),
            Turn(
                "Thanks, bye",
                "You are welcome.",
                [("model-a", 40000, 5, "0.00001235"), ("model-b", 7, 3, "1234.5678")],
                61000.0,
                30,
                {"helpful": [0.75, 0.5, 0.6], "tone": "warm"},
            ),
        ],
    ),
    "chat-ann-2": ("ann", [Turn("Hello", "Hi!", [("model-b", 5, 2, "0.5")], 7.25, 20)]),
    "chat-bob-1": (
        "bob",
        [
            Turn("Rate for EUR?", "1.08", [("model-a", 10, 1, "0.01")], 10.5, 15, {"helpful": [1.0]}),
            Turn("And GBP?", "0.86", [("model-b", 10, 1, "0.02")], 99.95, 10),
        ],
    ),
    "chat-old": ("ann", [Turn("Old question", "Old answer", [("model-a", 1, 1, "0.1")], 100.0, 3 * 24 * 60)]),
}


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


@pytest.fixture(scope="module")
def chats(start_collector):
    c = start_collector(name="sessions")
    now = time.time_ns()
    spans, scores = [], []
    for sid, (user, turns) in SESSIONS.items():
        for n, t in enumerate(turns, 1):
            start = now - int(t.ago_min * MINUTE_NS)
            root = make_span(
                f"turn {n}",
                trace_id=t.trace_id,
                start_ns=start,
                duration_ns=int(t.latency_ms * 10**6),
                attributes={"session.id": sid, "user.id": user},
            )
            spans.append(root)
            for i, (model, inp, out, cost) in enumerate(t.calls):
                attrs = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": inp,
                    "gen_ai.usage.output_tokens": out,
                    "gen_ai.usage.cost": cost,
                    "gen_ai.input.messages": _messages("user", t.question),
                }
                if t.answer is not None:
                    attrs["gen_ai.output.messages"] = _messages("assistant", t.answer)
                call = make_span(
                    f"chat {model}",
                    trace_id=t.trace_id,
                    parent_span_id=root.span_id,
                    start_ns=start + (i + 1) * 10**6,
                    duration_ns=10**6,
                    attributes=attrs,
                )
                if t.answer is None:
                    call.status.code = Status.STATUS_CODE_ERROR
                    call.status.message = FAILURE
                spans.append(call)
            for name, values in t.scores.items():
                for v in [values] if isinstance(values, str) else values:
                    scores.append((t.trace_id, b"", name, v))  # scores of the whole turn
    assert c.post("/v1/traces", trace_request(SERVICE, spans).SerializeToString()).status_code == 200
    assert c.post("/v1/logs", score_request(SERVICE, scores).SerializeToString()).status_code == 200
    assert wait_for(
        lambda: (
            c.scalar("SELECT count() FROM otel_traces") == len(spans)
            and c.scalar("SELECT count() FROM otel_scores") == len(scores)
        ),
        timeout=30,
    )
    return c


def plural(n: int, noun: str) -> str:
    return f"{fmt_int(n)} {noun}{'' if n == 1 else 's'}"


def expected_session(sid: str) -> dict:
    """A session's list row computed from what was sent."""
    user, turns = SESSIONS[sid]
    calls = [call for t in turns for call in t.calls]
    return {
        "session_id": sid,
        "user_id": user,
        "traces": len(turns),
        "llm_calls": len(calls),
        "total_tokens": sum(inp + out for _, inp, out, _ in calls),
        "cost_usd": sum((Decimal(cost) for *_, cost in calls), Decimal(0)),
    }


def shown_rows(ui) -> list[dict]:
    return ui.page.eval_on_selector_all(
        "#sessions-table tbody tr",
        """rows => rows.map(r => ({id: r.dataset.sessionId,
             cells: [...r.cells].map(c => c.textContent), first: r.cells[6].title, last: r.cells[7].title}))""",
    )


def test_list_defaults_to_24h_and_equals_rest_get(chats, ui):
    page = rest_get(chats, "/api/v1/sessions", since="24h", limit=50)
    rows = records(page)
    recent = ["chat-bob-1", "chat-ann-2", "chat-ann-1"]  # most recently active first
    assert [r["session_id"] for r in rows] == recent
    for r in rows:  # REST against what was sent
        want = expected_session(r["session_id"])
        assert {k: r[k] for k in want if k != "cost_usd"} == {
            k: v for k, v in want.items() if k != "cost_usd"
        }
        assert Decimal(r["cost_usd"]) == want["cost_usd"]

    ui.open(chats.http_url, "sessions")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    assert ui.page.locator("#range").input_value() == "24h"
    shown = shown_rows(ui)
    assert [s["id"] for s in shown] == recent
    for s, r in zip(shown, rows, strict=True):
        assert s["cells"][:6] == [
            r["session_id"],
            r["user_id"],
            fmt_int(r["traces"]),
            fmt_int(r["llm_calls"]),
            fmt_int(r["total_tokens"]),
            fmt_usd(r["cost_usd"]),
        ]
        assert (s["first"], s["last"]) == (r["first_time"], r["last_time"])
    ann1 = next(s for s in shown if s["id"] == "chat-ann-1")["cells"]
    assert ann1[2:6] == ["3", "4", "41,264", "$1,234.59"]  # by hand: 1234 + 15 + 40005 + 10 tokens

    ui.page.select_option("#range", "7d")  # the older conversation comes in
    ui.page.wait_for_url("**since=7d*")
    ui.wait_ready()
    assert [s["id"] for s in shown_rows(ui)] == [*recent, "chat-old"]


def test_user_filter_and_paging(chats, ui):
    ui.open(chats.http_url, "sessions?since=7d")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    ui.page.fill("#session-user", "bob")
    ui.page.press("#session-user", "Enter")
    ui.page.wait_for_url("**user=bob*")
    ui.wait_ready()
    assert [s["id"] for s in shown_rows(ui)] == ["chat-bob-1"]

    # A user's name in the list narrows the list to that user.
    ui.open(chats.http_url, "sessions?since=7d")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    ui.page.click('#sessions-table tr[data-session-id="chat-ann-2"] a[title="this user\'s sessions"]')
    ui.page.wait_for_url("**user=ann*")
    ui.wait_ready()
    anns = [r["session_id"] for r in records(rest_get(chats, "/api/v1/sessions", since="7d", user="ann"))]
    assert [s["id"] for s in shown_rows(ui)] == anns == ["chat-ann-2", "chat-ann-1", "chat-old"]

    ui.open(chats.http_url, "sessions?since=7d&limit=3")
    ui.page.wait_for_selector("#sessions-table tbody tr")
    first = [s["id"] for s in shown_rows(ui)]
    ui.page.click("#next-page")
    ui.page.wait_for_url("**cursor=*")
    ui.wait_ready()
    second = [s["id"] for s in shown_rows(ui)]
    assert ui.page.locator("#next-page").count() == 0
    everything = [r["session_id"] for r in records(rest_get(chats, "/api/v1/sessions", since="7d"))]
    assert len(first) == 3 and first + second == everything and len(everything) == len(SESSIONS)


def test_rest_turns_carry_root_span_and_scores(chats):
    session = rest_get(chats, "/api/v1/sessions/chat-ann-1")
    _, turns = SESSIONS["chat-ann-1"]
    assert [t["root_span"] for t in session["turns"]] == ["turn 1", "turn 2", "turn 3"]
    assert session["turns"][2]["scores"] == {
        "helpful": float(np.round(np.mean([0.75, 0.5, 0.6]), 6)),
        "tone": "warm",
    }
    assert [t["scores"] for t in session["turns"][:2]] == [{}, {}]
    assert [t["trace_id"] for t in session["turns"]] == [t.trace_id.hex() for t in turns]
    # The CLI table keeps its columns: names and scores are for REST and the UI.
    out = run_cli("sessions", "show", "chat-ann-1", "--server", chats.http_url, "--format", "csv")
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert header == "turn,trace_id,start_time,status,latency_ms,models,total_tokens,cost_usd,input,output"


def test_transcript_turns_equal_rest_and_what_was_sent(chats, ui):
    for sid, (user, turns) in SESSIONS.items():
        session = rest_get(chats, f"/api/v1/sessions/{sid}")
        ui.open(chats.http_url, f"sessions/{sid}")
        ui.page.wait_for_selector("#transcript .turn")
        want = expected_session(sid)
        summary = ui.page.locator("#session-summary").inner_text()
        assert summary.startswith(
            f"user {user} · {plural(len(turns), 'turn')} · {plural(want['llm_calls'], 'LLM call')} · "
            f"{fmt_int(want['total_tokens'])} tokens · {fmt_usd(want['cost_usd'])} · "
        ), summary
        assert fmt_usd(session["cost_usd"]) == fmt_usd(want["cost_usd"])
        blocks = ui.page.locator("#transcript .turn")
        assert blocks.count() == len(turns) == len(session["turns"])
        for i, (sent, got) in enumerate(zip(turns, session["turns"], strict=True)):
            block = blocks.nth(i)
            meta = block.locator(".turn-meta")
            assert block.get_attribute("data-trace-id") == got["trace_id"] == sent.trace_id.hex()
            assert meta.locator("a.turn-link").inner_text() == f"#{i + 1} turn {i + 1}"
            assert meta.locator("a.turn-link").get_attribute("href") == f"#/trace/{got['trace_id']}"
            assert got["latency_ms"] == sent.latency_ms
            assert meta.locator(".turn-latency").inner_text() == fmt_ms(got["latency_ms"])
            assert meta.locator(".turn-models").inner_text() == ", ".join(sorted({m for m, *_ in sent.calls}))
            tokens = sum(inp + out for _, inp, out, _ in sent.calls)
            assert got["total_tokens"] == tokens
            assert meta.locator(".turn-tokens").inner_text() == f"{fmt_int(tokens)} tokens"
            assert Decimal(got["cost_usd"]) == sum(Decimal(c) for *_, c in sent.calls)
            assert meta.locator(".turn-cost").inner_text() == fmt_usd(got["cost_usd"])
            assert sorted(meta.locator(".badge.score").all_inner_texts()) == sorted(
                f"{k} {fmt_score(v)}" for k, v in got["scores"].items()
            )
            assert block.locator(".bubble.user .text").inner_text() == sent.question
            assert block.locator(".bubble.user .role").inner_text().lower() == user
            if sent.answer is None:
                assert got["status"] == "error" and "error" in (block.get_attribute("class") or "")
                assert meta.locator(".turn-failed").count() == 1
                assert (
                    block.locator(".bubble.assistant.missing .text").inner_text()
                    == "No answer: the turn failed."
                )
                # the error itself, on the call it arose in (no error.type was sent)
                model = sent.calls[0][0]
                assert got["error"] == {"span": f"chat {model}", "type": "", "message": FAILURE}
                assert block.locator(".turn-error").inner_text() == f"chat {model}: {FAILURE}"
            else:
                assert meta.locator(".turn-failed").count() == 0
                assert got["error"] is None and block.locator(".turn-error").count() == 0
                assert block.locator(".bubble.assistant .text").inner_text() == sent.answer
    # By hand, the documented rules on this data: ties round up, as JavaScript's toFixed does.
    assert [fmt_ms(t.latency_ms) for t in SESSIONS["chat-ann-1"][1]] == ["813 ms", "2.03 s", "1.0 min"]
    assert fmt_score(np.round(np.mean([0.75, 0.5, 0.6]), 6)) == "0.6167"


def test_traces_page_links_session_ids_to_the_transcript(chats, ui):
    ui.open(chats.http_url, "traces?since=24h")
    ui.page.wait_for_selector("#traces-table tbody tr")
    links = ui.page.locator('#traces-table a.session-link[href="#/sessions/chat-bob-1"]')
    assert links.count() == 2  # one per turn
    links.first.click()
    ui.page.wait_for_url("**#/sessions/chat-bob-1")
    ui.page.wait_for_selector("#transcript .turn")
    assert ui.page.locator("#transcript .turn").count() == 2
