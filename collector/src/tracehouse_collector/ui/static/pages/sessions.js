import { h, ApiError, api, errorBox, fmtCost, fmtInt, fmtMs, fmtTime, rangeSelect, records, routeUrl, scoreBadges } from "../lib.js";
import { valueView } from "../views.js";

// #/sessions?since=24h&user=&limit=: conversations, most recently active first;
// #/sessions/<id>: one as a transcript.

export async function renderSessions(root, route, current) {
  if (route.id) return renderTranscript(root, route, current);
  const p = route.params;
  const since = p.get("since") || "24h"; // as every other page
  const user = p.get("user") || "";
  const cursor = p.get("cursor") || "";
  const limit = p.get("limit") || ""; // page size, 50 unless the URL says otherwise
  const sort = p.get("sort") || ""; // server-side order (GET /api/v1/sessions?sort=)
  const go = (changes) => (location.hash = routeUrl("sessions", "", { since, user, limit, sort, ...changes }));
  root.append(
    h("div.toolbar",
      h("h1", "Sessions"),
      rangeSelect(since, (v) => go({ since: v })),
      h("input#session-user", { type: "search", placeholder: "user id (press Enter)", value: user, size: 20,
        onchange: (e) => go({ user: e.target.value.trim() }) }),
    ),
  );
  let page;
  try {
    page = await api("/api/v1/sessions", { since, user, sort, cursor, limit: limit || 50 });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("sessions-error", err.message));
    return;
  }
  if (!current()) return;
  const rows = records(page);
  if (!rows.length) {
    root.append(h("div.empty",
      h("h2", user || cursor ? "No sessions match in this time range." : "No sessions yet"),
      h("p", "A session groups the traces of one conversation. Give spans a ", h("code", "session.id"),
        " attribute (", h("code", 'with tracehouse.context(session_id="...")'), "), or run ", h("code", "tracehouse demo"), ".")));
    return;
  }
  root.append(
    h("table#sessions-table",
      h("thead", h("tr", ["session", "user", "turns", "LLM calls", "tokens", "cost", "first", "last active"].map((c) => sortHeader(c, sort, go)))),
      h("tbody", rows.map((s) =>
        h("tr", { dataset: { sessionId: s.session_id } },
          h("td", h("a", { href: routeUrl("sessions", s.session_id) }, s.session_id)),
          h("td", s.user_id ? h("a", { href: routeUrl("sessions", "", { since, user: s.user_id, limit }), title: "this user's sessions" }, s.user_id) : ""),
          h("td.num", fmtInt(s.traces)),
          h("td.num", fmtInt(s.llm_calls)),
          h("td.num", { title: `${fmtInt(s.input_tokens)} in / ${fmtInt(s.output_tokens)} out` }, fmtInt(s.total_tokens)),
          h("td.num", fmtCost(s.cost_usd)),
          h("td", { title: s.first_time }, fmtTime(s.first_time)),
          h("td", { title: s.last_time }, fmtTime(s.last_time)))))),
    h("div.pager",
      cursor ? h("button", { type: "button", onclick: () => go({}) }, "« First page") : null,
      page.next_cursor ? h("button#next-page", { type: "button", onclick: () => go({ cursor: page.next_cursor }) }, "Next page »") : null),
  );
}

// Header label -> the server's sort column; a click sorts descending, a second click ascending.
const SESSION_SORTS = { turns: "traces", "LLM calls": "llm_calls", tokens: "total_tokens", cost: "cost_usd", first: "first_time", "last active": "last_time" };
function sortHeader(label, sort, go) {
  const column = SESSION_SORTS[label];
  if (!column) return h("th", label);
  const [current, dir] = (sort || "last_time:desc").split(":");
  const active = current === column;
  const asc = active && dir === "asc";
  return h(`th.sortable${active ? ".sorted" : ""}${asc ? ".asc" : ""}`,
    { dataset: { sort: column }, title: `sort by ${label}`, onclick: () => go({ sort: `${column}:${active && !asc ? "asc" : "desc"}`, cursor: "" }) }, label);
}

const count = (n, noun) => `${fmtInt(n)} ${noun}${Number(n) === 1 ? "" : "s"}`;

async function renderTranscript(root, route, current) {
  const s = await api(`/api/v1/sessions/${encodeURIComponent(route.id)}`);
  if (!current()) return;
  root.append(
    h("div.toolbar",
      h("a", { href: "#/sessions" }, "← Sessions"),
      h("h1", `Session ${s.session_id}`),
      h("span.muted#session-summary", [s.user_id ? `user ${s.user_id} · ` : "", `${count(s.traces, "turn")} · ${count(s.llm_calls, "LLM call")} · `,
        `${fmtInt(s.total_tokens)} tokens · ${fmtCost(s.cost_usd)} · ${fmtTime(s.first_time)} – ${fmtTime(s.last_time)}`]),
    ),
  );
  const turns = s.turns.map((t) =>
    h(`div.turn${t.status === "error" ? ".error" : ""}`, { dataset: { traceId: t.trace_id, turn: t.turn } },
      h("div.turn-meta",
        h("a.turn-link", { href: routeUrl("trace", t.trace_id), title: "open this turn's trace" }, `#${t.turn} ${t.root_span || "trace"}`),
        " ", h("span.muted.turn-time", { title: t.start_time }, fmtTime(t.start_time)),
        " · ", h("span.turn-latency", fmtMs(t.latency_ms)),
        " · ", h("span.turn-models", (t.models || []).join(", ") || "no model"),
        " · ", h("span.turn-tokens", `${fmtInt(t.total_tokens)} tokens`),
        " · ", h("span.turn-cost", fmtCost(t.cost_usd)),
        " ", scoreBadges(t.scores),
        t.status === "error" ? h("span.span-error.turn-failed", { title: "a span of this turn failed: open its trace" }, " failed") : null),
      t.input ? h("div.bubble.user", h("div.role", s.user_id || "user"), h("div.text", t.input)) : null,
      (t.tools || []).length ? h("div.turn-tools", t.tools.map(toolCall)) : null,
      t.output
        ? h("div.bubble.assistant", h("div.role", "assistant"), h("div.text", t.output))
        : h("div.bubble.assistant.missing", h("div.role", "assistant"), h("div.text.muted", t.status === "error" ? "No answer: the turn failed." : "No answer recorded.")),
      t.error ? turnError(t) : null),
  );
  root.append(h("div#transcript", turns));
}

// The error that failed a turn, where it arose: "span: Type: message".
function turnError(t) {
  const e = t.error;
  return h("div.error-box.turn-error", { role: "note" },
    h("a", { href: routeUrl("trace", t.trace_id), title: "open the failing trace" }, e.span), ": ",
    e.type ? `${e.type}: ` : "", e.message || "failed (no message recorded)");
}

// A tool the turn called: its name and arguments, the result on a click.
function toolCall(c) {
  const args = c.arguments && typeof c.arguments === "object"
    ? Object.entries(c.arguments).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")
    : c.arguments ?? "";
  return h(`details.tool-call${c.status === "error" ? ".error" : ""}`, { dataset: { tool: c.name } },
    h("summary", h("span.span-icon", "⚙"), h("code.tool-signature", `${c.name}(${args})`)),
    c.arguments !== null ? h("div.tool-arguments", h("span.muted", "arguments "), valueView(c.arguments)) : null,
    c.result !== null ? h("div.tool-result", h("span.muted", "result "), valueView(c.result)) : null);
}
