// Tracehouse web UI: a hash-routed single page over the REST API (/api/v1/...).
// All user data goes into the page through textContent (the h() helper), never as HTML.

const view = document.getElementById("view");
const THEME_KEY = "tracehouse.theme";
let charts = []; // ECharts instances of the current page, disposed on navigation
let renderToken = 0; // a page render that finds a newer token has been superseded

// ---------- small helpers ----------

// h("div.cls#id", {attrs}, children...): children are nodes or text (set as text, never parsed).
function h(spec, attrs, ...children) {
  const [, tag, rest] = spec.match(/^([a-z0-9]+)(.*)$/i);
  const el = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {}

async function api(path, params, body) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const opts = body ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {};
  const resp = await fetch(url, opts);
  let data = null;
  try {
    data = await resp.json();
  } catch {
    /* not JSON: reported below by status */
  }
  if (!resp.ok) throw new ApiError((data && data.error) || `${resp.status} ${resp.statusText}`);
  return data;
}

const records = (page) => page.rows.map((r) => Object.fromEntries(page.columns.map((c, i) => [c, r[i]])));

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 60000) return `${(ms / 60000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}
function fmtCost(v) {
  const n = Number(v || 0);
  if (!n) return "–";
  return n >= 0.01 ? `$${n.toFixed(2)}` : `$${n.toPrecision(2)}`;
}
const fmtInt = (n) => (n ? Number(n).toLocaleString("en-US") : "–");
function fmtNum(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : Number(v.toPrecision(4)).toString();
}
// A score is a number or {value, label}-like object, depending on the producer.
function fmtScore(v) {
  if (v !== null && typeof v === "object") return fmtScore(v.value ?? v.avg ?? v.label ?? JSON.stringify(v));
  return typeof v === "number" ? fmtNum(v) : String(v);
}
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const fmtValue = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : fmtNum(v));

function sinceSeconds(since) {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(since || "");
  if (!m) return 86400;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
}

function errorBox(id, message) {
  return h(`div.error-box#${id}`, { role: "alert" }, message);
}

function emptyTraces() {
  return h(
    "div.empty",
    h("h2", "No traces yet"),
    h("p", "Send some data to this collector, then reload:"),
    h("ul",
      h("li", h("code", "tracehouse demo"), " fills it with a sample LLM app and training runs."),
      h("li", h("code", "TRACEHOUSE_INSTRUMENT=1 python app.py"), " traces your own app's LLM calls."),
      h("li", "Any OpenTelemetry SDK can export OTLP to this collector (gRPC :4317, HTTP :4318)."),
    ),
  );
}

function emptyRuns() {
  return h(
    "div.empty",
    h("h2", "No runs yet"),
    h("p", "Log an experiment run from Python, then reload:"),
    h("pre", h("code", 'import tracehouse\nwith tracehouse.run(experiment="demo", params={"lr": 0.01}) as run:\n    run.log_metric("loss", 0.5, step=1)')),
    h("p", "Or run ", h("code", "tracehouse demo"), " for sample runs."),
  );
}

// ---------- routing: #/page/id?query ----------

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?", 2);
  const [page, ...rest] = path.split("/");
  return { page, id: rest.map(decodeURIComponent).join("/"), params: new URLSearchParams(query || "") };
}

function routeUrl(page, id, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const qs = q.toString();
  return `#/${page}${id ? "/" + encodeURIComponent(id) : ""}${qs ? "?" + qs : ""}`;
}

const PAGES = { overview: renderOverview, traces: renderTraces, trace: renderTrace, runs: renderRuns, run: renderRun };

async function render() {
  const token = ++renderToken;
  for (const c of charts) c.dispose();
  charts = [];
  const route = parseRoute();
  const page = PAGES[route.page] ? route.page : "overview";
  const navPage = { trace: "traces", run: "runs" }[page] || page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === navPage);
  const root = h("div"); // in the page from the start, so charts get their real size
  view.replaceChildren(root);
  const current = () => token === renderToken;
  try {
    await PAGES[page](root, route, current);
  } catch (err) {
    if (!current()) return;
    root.replaceChildren(errorBox("page-error", err instanceof ApiError ? err.message : `Error: ${err.message}`));
    if (!(err instanceof ApiError)) console.warn(err);
  }
}

function chart(el) {
  const dark = document.documentElement.dataset.theme === "dark";
  const c = window.echarts.init(el, dark ? "dark" : null, { renderer: "canvas" });
  c.setOption({ backgroundColor: "transparent" }); // the page's own background, in both themes
  requestAnimationFrame(() => c.isDisposed() || c.resize()); // once the grid has laid out its siblings
  charts.push(c);
  return c;
}

// ---------- pages ----------

const RANGES = ["15m", "1h", "6h", "24h", "7d", "30d"];

function rangeSelect(value, onChange) {
  return h(
    "select#range",
    { title: "Time range", onchange: (e) => onChange(e.target.value) },
    RANGES.map((r) => h("option", { value: r, selected: r === value }, `last ${r}`)),
  );
}

async function renderOverview(root, route, current) {
  const since = route.params.get("since") || "24h";
  root.append(
    h("div.toolbar", h("h1", "Overview"), rangeSelect(since, (v) => (location.hash = routeUrl("overview", "", { since: v })))),
  );
  const secs = sinceSeconds(since);
  const [counts, lat, cost, byHour] = await Promise.all([
    api("/api/v1/sql", null, {
      sql:
        "SELECT uniqExact(TraceId) AS traces, uniqExactIf(TraceId, StatusCode = 'Error') AS error_traces " +
        `FROM otel_traces WHERE Timestamp >= now() - INTERVAL ${secs} SECOND`,
    }),
    api("/api/v1/query/latency", { since }),
    api("/api/v1/query/cost", { since }),
    api("/api/v1/query/latency", { since, by: "hour" }),
  ]);
  if (!current()) return;
  const c = records(counts)[0] || { traces: 0, error_traces: 0 };
  const l = records(lat)[0] || {};
  const k = records(cost)[0] || {};
  if (!Number(c.traces)) {
    root.append(emptyTraces());
    return;
  }
  const kpi = (key, label, value) => h("div.kpi", { dataset: { kpi: key } }, h("div.label", label), h("div.value", value));
  root.append(
    h(
      "div.kpis#kpis",
      kpi("traces", "Traces", fmtInt(c.traces)),
      kpi("llm_calls", "LLM calls", fmtInt(l.count)),
      kpi("tokens", "Tokens", fmtInt(k.total_tokens)),
      kpi("cost", "Cost", fmtCost(k.cost_usd)),
      kpi("p50", "LLM latency p50", fmtMs(l.p50_ms)),
      kpi("p99", "LLM latency p99", fmtMs(l.p99_ms)),
      kpi("error_rate", "Traces with errors", `${((100 * c.error_traces) / c.traces).toFixed(1)}%`),
    ),
  );
  const hours = records(byHour);
  const el = h("div.chart#latency-chart");
  root.append(h("h2", "LLM call latency by hour"), el);
  chart(el).setOption({
    tooltip: { trigger: "axis" },
    legend: { data: ["p50", "p90", "p99"] },
    grid: { left: 60, right: 20, top: 40, bottom: 40 },
    xAxis: { type: "time", min: Date.now() - secs * 1000, max: Date.now() },
    yAxis: { type: "value", name: "ms" },
    series: ["p50", "p90", "p99"].map((p) => ({
      name: p,
      type: "line",
      showSymbol: hours.length < 50,
      data: hours.map((r) => [r.hour + "Z", r[`${p}_ms`]]),
    })),
  });
  const [recent, runs] = await Promise.all([api("/api/v1/traces", { since, limit: 8 }), api("/api/v1/runs", { limit: 8 })]);
  if (!current()) return;
  root.append(
    h("div.charts",
      h("div",
        h("h2", "Recent traces ", h("a", { href: routeUrl("traces", "", { since }) }, "(all)")),
        h("table#recent-traces", h("tbody", records(recent).map((r) =>
          h(`tr${r.status === "error" ? ".error" : ""}`,
            h("td", h("span.status", { title: r.status })),
            h("td", h("a", { href: routeUrl("trace", r.trace_id) }, r.root_span || r.trace_id)),
            h("td.preview", { title: r.input }, r.input),
            h("td.num", fmtMs(r.latency_ms)),
            h("td", { title: r.start_time }, fmtTime(r.start_time))))))),
      h("div",
        h("h2", "Recent runs ", h("a", { href: "#/runs" }, "(all)")),
        runs.length
          ? h("table#recent-runs", h("tbody", runs.map((r) =>
              h(`tr${r.status === "failed" ? ".error" : ""}`,
                h("td", h(`span.status${r.status === "failed" ? ".error" : ""}`, { title: r.status })),
                h("td", h("a", { href: routeUrl("run", r.id) }, r.name)),
                h("td", r.experiment),
                h("td", { title: r.start }, fmtTime(r.start))))))
          : h("p.muted", "No runs yet."))),
  );
}

async function renderTraces(root, route, current) {
  const p = route.params;
  const since = p.get("since") || "24h";
  const where = p.get("where") || "";
  const cursor = p.get("cursor") || "";
  const limit = p.get("limit") || ""; // page size, 50 unless the URL says otherwise
  const go = (changes) => {
    location.hash = routeUrl("traces", "", { since, where, limit, ...changes });
  };
  const whereBox = h("input#where", {
    type: "search",
    placeholder: "filter, e.g. model = 'gpt-4o' and duration_ms > 500 (press Enter)",
    value: where,
  });
  root.append(
    h("div.toolbar",
      h("h1", "Traces"),
      rangeSelect(since, (v) => go({ since: v, where: whereBox.value })),
      h("form", { style: "display:contents", onsubmit: (e) => { e.preventDefault(); go({ where: whereBox.value.trim() }); } },
        whereBox, h("button", { type: "submit" }, "Apply")),
    ),
  );
  let page;
  try {
    page = await api("/api/v1/traces", { since, where, cursor, limit: limit || 50 });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("traces-error", err.message));
    return;
  }
  if (!current()) return;
  const rows = records(page);
  if (!rows.length) {
    root.append(where || cursor ? h("p.empty", "No traces match in this time range.") : emptyTraces());
    return;
  }
  const cols = ["", "start", "name", "input", "output", "model", "latency", "tokens", "cost", "scores", "session", "user", "run"];
  const body = rows.map((r) =>
    h(`tr${r.status === "error" ? ".error" : ""}`, { dataset: { traceId: r.trace_id } },
      h("td", h("span.status", { title: r.status })),
      h("td", { title: r.start_time }, fmtTime(r.start_time)),
      h("td", h("a", { href: routeUrl("trace", r.trace_id) }, r.root_span || r.trace_id)),
      h("td.preview", { title: r.input }, r.input),
      h("td.preview", { title: r.output }, r.output),
      h("td", (r.models || []).join(", ")),
      h("td.num", fmtMs(r.latency_ms)),
      h("td.num", { title: `${r.input_tokens} in / ${r.output_tokens} out` }, fmtInt(r.total_tokens)),
      h("td.num", fmtCost(r.cost_usd)),
      h("td", Object.entries(r.scores || {}).map(([k, v]) => h("span.badge", { title: k }, `${k} ${fmtScore(v)}`))),
      h("td", r.session_id),
      h("td", r.user_id),
      h("td", r.run_id ? h("a", { href: routeUrl("run", r.run_id), title: r.run_id }, r.run_id.slice(0, 8)) : ""),
    ),
  );
  root.append(h("table#traces-table", h("thead", h("tr", cols.map((c) => h("th", c)))), h("tbody", body)));
  root.append(
    h("div.pager",
      cursor ? h("button", { type: "button", onclick: () => go({ where }) }, "« First page") : null,
      page.next_cursor ? h("button#next-page", { type: "button", onclick: () => go({ where, cursor: page.next_cursor }) }, "Next page »") : null,
    ),
  );
}

// ----- trace detail -----

const SPAN_ICONS = { llm: "◆", tool: "⚙", retrieval: "⌕", embedding: "≋", agent: "★", span: "•" };

function spanType(s) {
  const op = s.operation || "";
  if (s.tool || op === "execute_tool") return "tool";
  if (op === "embeddings") return "embedding";
  if (op.includes("retriev") || /retriev|search/i.test(s.name)) return "retrieval";
  if (op.includes("agent")) return "agent";
  if (s.model) return "llm";
  return "span";
}

// The traces list filtered to one value of a field, over the last 30 days.
function filterLink(field, value) {
  return routeUrl("traces", "", { since: "30d", where: `${field} = '${String(value).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'` });
}

function* walkSpans(spans, depth = 0) {
  for (const s of spans) {
    yield [s, depth];
    yield* walkSpans(s.children || [], depth + 1);
  }
}

async function renderTrace(root, route, current) {
  const t = await api(`/api/v1/traces/${encodeURIComponent(route.id)}`);
  if (!current()) return;
  root.append(
    h("div.toolbar",
      h("a", { href: "#/traces" }, "← Traces"),
      h("h1", `Trace ${t.trace_id}`),
      h("span.status" + (t.status === "error" ? ".error" : ""), { title: t.status }),
      h("span.muted", `${fmtTime(t.start_time)} · ${fmtMs(t.duration_ms)} · ${t.span_count} spans · `,
        `${fmtInt(t.total_tokens)} tokens · ${fmtCost(t.cost_usd)}`,
        t.session_id ? [" · session ", h("a", { href: filterLink("session", t.session_id) }, t.session_id)] : "",
        t.user_id ? [" · user ", h("a", { href: filterLink("user", t.user_id) }, t.user_id)] : "",
        t.run_id ? [" · run ", h("a", { href: routeUrl("run", t.run_id) }, t.run_id.slice(0, 8))] : ""),
    ),
  );
  if (t.truncated) root.append(h("p.error-box", "This trace has more spans than shown."));
  const pane = h("div.pane#span-detail", h("p.muted", "Select a span to see its messages and attributes."));
  const tree = h("div#span-tree");
  const total = t.duration_ms || 1;
  let selected = null;
  let initial = null;
  for (const [s, depth] of walkSpans(t.spans)) {
    const cls = ["span-row"];
    if (s.status === "Error" || s.error) cls.push("error");
    if (s.model) cls.push("llm");
    const left = (100 * s.offset_ms) / total;
    const width = Math.max((100 * s.duration_ms) / total, 0.3);
    const row = h(
      "div." + cls.join("."),
      { dataset: { spanId: s.span_id }, tabindex: 0 },
      h("div.span-name", { style: `padding-left:${depth * 16}px`, title: s.name },
        h("span.span-icon", { title: spanType(s) }, SPAN_ICONS[spanType(s)]),
        h("span", s.name),
        s.model ? h("span.badge", s.model) : null,
        s.total_tokens ? h("span.badge", { title: `${s.input_tokens} in / ${s.output_tokens} out` }, `${s.total_tokens} tok`) : null,
        Number(s.cost_usd) ? h("span.badge", fmtCost(s.cost_usd)) : null,
        s.orphan ? h("span.badge", { title: "its parent span never arrived" }, "orphan") : null,
        s.error ? h("span.span-error", `${s.error.type ? s.error.type + ": " : ""}${s.error.message || "error"}`) : null,
      ),
      h("div.waterfall",
        h("div.waterfall-bar", { style: `left:${Math.min(left, 99.7)}%;width:${Math.min(width, 100 - Math.min(left, 99.7))}%` }),
        h("span.waterfall-label", fmtMs(s.duration_ms)),
      ),
    );
    const select = () => {
      if (selected) selected.classList.remove("selected");
      selected = row;
      row.classList.add("selected");
      pane.replaceChildren(...spanDetail(s));
      history.replaceState(null, "", routeUrl("trace", t.trace_id, { span: s.span_id })); // shareable
    };
    row.addEventListener("click", select);
    row.addEventListener("keydown", (e) => e.key === "Enter" && select());
    tree.append(row);
    if (s.span_id === route.params.get("span")) initial = select;
  }
  if (initial) initial();
  root.append(h("div.trace-layout", tree, pane));
}

// A message's parts as readable blocks: text as text, tool calls and other parts as JSON.
function messageParts(msg) {
  const out = [];
  const content = msg.parts ?? msg.content;
  const parts = typeof content === "string" ? [{ type: "text", content }] : Array.isArray(content) ? content : [];
  for (const p of parts) {
    if (typeof p === "string") out.push(h("div.text", p));
    else if (p.type === "text" && typeof (p.content ?? p.text) === "string") out.push(h("div.text", p.content ?? p.text));
    else if (p.type === "tool_call") out.push(h("div", h("strong", `→ tool call ${p.name || ""}`), h("pre.json", JSON.stringify(p.arguments ?? p, null, 2))));
    else if (p.type === "tool_call_response") out.push(h("div", h("strong", "← tool result"), h("pre.json", fmtJson(p.response ?? p.result ?? p))));
    else out.push(h("pre.json", JSON.stringify(p, null, 2)));
  }
  for (const call of msg.tool_calls || []) out.push(h("div", h("strong", "→ tool call"), h("pre.json", JSON.stringify(call, null, 2))));
  if (!parts.length && !(msg.tool_calls || []).length) out.push(h("pre.json", JSON.stringify(msg, null, 2)));
  return out;
}

const fmtJson = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));

function messages(value) {
  if (value === null || value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((m) =>
    m && typeof m === "object"
      ? h(`div.message.role-${String(m.role || "unknown").replace(/[^a-z_-]/gi, "")}`,
          h("div.role", m.role || "message", m.finish_reason ? ` (${m.finish_reason})` : ""), messageParts(m))
      : h("div.message", h("div.text", fmtJson(m))),
  );
}

function spanDetail(s) {
  const out = [h("h2", s.name)];
  const facts = [
    ["status", s.status + (s.status_message ? `: ${s.status_message}` : "")],
    ["duration", fmtMs(s.duration_ms)],
    ["start", `+${fmtMs(s.offset_ms)} (${s.start_time})`],
    ["service", s.service],
    ["operation", s.operation],
    ["model", s.model],
    ["provider", s.provider],
    ["tokens", s.total_tokens ? `${s.input_tokens} in / ${s.output_tokens} out${s.tokens_estimated ? " (estimated)" : ""}` : ""],
    ["cost", Number(s.cost_usd) ? fmtCost(s.cost_usd) : ""],
    ["span id", s.span_id],
  ].filter(([, v]) => v);
  out.push(h("dl.facts", facts.map(([k, v]) => [h("dt", k), h("dd", v)])));
  if (s.error) out.push(errorBox("span-error", `${s.error.type ? s.error.type + ": " : ""}${s.error.message}`));
  if (s.input !== null && s.input !== undefined) out.push(h("h2", "Input"), ...messages(s.input));
  if (s.output !== null && s.output !== undefined) out.push(h("h2", "Output"), ...messages(s.output));
  if (s.tool) {
    out.push(h("h2", `Tool ${s.tool.name}`));
    if (s.tool.arguments !== null) out.push(h("div", h("strong", "arguments"), h("pre.json", fmtJson(s.tool.arguments))));
    if (s.tool.result !== null) out.push(h("div", h("strong", "result"), h("pre.json", fmtJson(s.tool.result))));
  }
  if ((s.events || []).length) {
    out.push(h("h2", "Events"));
    for (const e of s.events) out.push(h("div", h("strong", `+${fmtMs(e.offset_ms)} ${e.name}`), h("pre.json", JSON.stringify(e.attributes, null, 2))));
  }
  const search = h("input#attr-search", { type: "search", placeholder: "search attributes" });
  const attrRows = Object.entries(s.attributes || {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => h("tr", { dataset: { key: k.toLowerCase(), value: String(v).toLowerCase().slice(0, 2000) } }, h("td", k), h("td", v)));
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const r of attrRows) r.style.display = !q || r.dataset.key.includes(q) || r.dataset.value.includes(q) ? "" : "none";
  });
  out.push(h("h2", "Attributes"), search, h("table#attr-table", h("tbody", attrRows)));
  const res = Object.entries(s.resource || {}).sort(([a], [b]) => a.localeCompare(b));
  if (res.length) out.push(h("h2", "Resource"), h("table", h("tbody", res.map(([k, v]) => h("tr", h("td", k), h("td", v))))));
  return out;
}

// ----- runs -----

const RUN_COLUMNS = {
  status: (r) => r.status,
  name: (r) => r.name,
  experiment: (r) => r.experiment,
  start: (r) => r.start || "",
  duration: (r) => r.duration_s ?? -1,
};

async function renderRuns(root, route, current) {
  const p = route.params;
  const sort = p.get("sort") || "start";
  const dir = p.get("dir") || (sort === "start" ? "desc" : "asc");
  const selected = new Set((p.get("sel") || "").split(",").filter(Boolean));
  const experiment = p.get("experiment") || "";
  const where = p.get("where") || "";
  const state = () => ({ experiment, where, sort, dir, sel: [...selected].join(",") });
  const whereBox = h("input#where", { type: "search", placeholder: "filter, e.g. params.lr > 0.001 and status = 'finished' (press Enter)", value: where });
  root.append(
    h("div.toolbar",
      h("h1", "Runs"),
      h("input#experiment", { type: "search", placeholder: "experiment", value: experiment, size: 16,
        onchange: (e) => (location.hash = routeUrl("runs", "", { ...state(), experiment: e.target.value.trim() })) }),
      h("form", { style: "display:contents", onsubmit: (e) => { e.preventDefault(); location.hash = routeUrl("runs", "", { ...state(), where: whereBox.value.trim() }); } },
        whereBox, h("button", { type: "submit" }, "Apply")),
      h("span.muted#selection-count", selected.size ? `${selected.size} selected` : ""),
    ),
  );
  let runs;
  try {
    runs = await api("/api/v1/runs", { limit: 1000, experiment, where });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("runs-error", err.message));
    return;
  }
  if (!current()) return;
  if (!runs.length) {
    root.append(experiment || where ? h("p.empty", "No runs match.") : emptyRuns());
    return;
  }
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const keyOf = (col) => {
    if (RUN_COLUMNS[col]) return RUN_COLUMNS[col];
    if (col.startsWith("params.")) return (r) => r.params[col.slice(7)];
    if (col.startsWith("metrics.")) return (r) => r.metrics[col.slice(8)];
    return RUN_COLUMNS.start;
  };
  const get = keyOf(sort);
  const sorted = [...runs].sort((a, b) => {
    const x = get(a), y = get(b);
    if (x === undefined || y === undefined) return x === undefined ? 1 : -1; // missing values last
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return dir === "asc" ? c : -c;
  });
  const header = (col, label) =>
    h(`th.sortable${col === sort ? ".sorted" + (dir === "asc" ? ".asc" : "") : ""}${col.includes(".") ? "." + col.split(".")[0] : ""}`,
      { title: col.includes(".") ? col : null, onclick: () => (location.hash = routeUrl("runs", "", { ...state(), sort: col, dir: col === sort && dir === "asc" ? "desc" : "asc" })) },
      label);
  const check = (r) =>
    h("input", {
      type: "checkbox",
      checked: selected.has(r.id),
      title: "select for comparison",
      onchange: (e) => {
        if (e.target.checked) selected.add(r.id);
        else selected.delete(r.id);
        location.hash = routeUrl("runs", "", state()); // redraws the curves of the selection
      },
    });
  const body = sorted.map((r) =>
    h(`tr${r.status === "failed" ? ".error" : ""}`, { dataset: { runId: r.id } },
      h("td", check(r)),
      h("td", h(`span.status${r.status === "failed" ? ".error" : ""}`), " ", r.status),
      h("td", h("a", { href: routeUrl("run", r.id) }, r.name)),
      h("td", r.experiment),
      h("td", { title: r.start }, fmtTime(r.start)),
      h("td.num", r.duration_s === null ? "running" : fmtMs(r.duration_s * 1000)),
      paramKeys.map((k) => h("td", k in r.params ? fmtValue(r.params[k]) : "")),
      metricKeys.map((k) => h("td.num", k in r.metrics ? fmtNum(r.metrics[k]) : "")),
    ),
  );
  root.append(
    h("table#runs-table",
      h("thead", h("tr",
        h("th", ""),
        Object.keys(RUN_COLUMNS).map((c) => header(c, c)),
        paramKeys.map((k) => header(`params.${k}`, k)),
        metricKeys.map((k) => header(`metrics.${k}`, k)),
      )),
      h("tbody", body),
    ),
  );
  const chosen = sorted.filter((r) => selected.has(r.id));
  if (chosen.length) await selectedCurves(root, chosen, current);
}

// One chart per metric, a line per selected run (x = step).
async function selectedCurves(root, chosen, current) {
  const histories = await Promise.all(chosen.map((r) => api(`/api/v1/runs/${encodeURIComponent(r.id)}/metrics`)));
  if (!current()) return;
  const byKey = new Map(); // metric -> [{name, data}]
  chosen.forEach((r, i) => {
    const perKey = new Map();
    for (const p of histories[i]) {
      if (p.key.startsWith("system.")) continue;
      if (!perKey.has(p.key)) perKey.set(p.key, []);
      perKey.get(p.key).push([p.step, p.value]);
    }
    for (const [key, data] of perKey) {
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push({ name: `${r.name} (${r.id.slice(0, 6)})`, data });
    }
  });
  const box = h("div.charts#selected-charts");
  root.append(h("h2", `Metric curves of the ${chosen.length} selected run${chosen.length > 1 ? "s" : ""}`), box);
  if (!byKey.size) box.append(h("p.muted", "The selected runs logged no metrics."));
  for (const [key, lines] of [...byKey].sort(([a], [b]) => a.localeCompare(b))) {
    const el = h("div.chart", { dataset: { metric: key } });
    box.append(el);
    chart(el).setOption({
      title: { text: key, left: 8, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24, type: "scroll" },
      grid: { left: 60, right: 20, top: 60, bottom: 50 },
      xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 26 },
      yAxis: { type: "value", scale: true },
      dataZoom: [{ type: "inside" }],
      series: lines.map((l) => ({ type: "line", name: l.name, showSymbol: l.data.length < 60, data: l.data })),
    });
  }
}

async function renderRun(root, route, current) {
  const id = route.id;
  const [run, history] = await Promise.all([
    api(`/api/v1/runs/${encodeURIComponent(id)}`),
    api(`/api/v1/runs/${encodeURIComponent(id)}/metrics`),
  ]);
  if (!current()) return;
  root.append(
    h("div.toolbar", h("a", { href: "#/runs" }, "← Runs"), h("h1", `Run ${run.name}`),
      h(`span.status${run.status === "failed" ? ".error" : ""}`), h("span", run.status)),
    h("dl.facts",
      [["id", run.id], ["experiment", run.experiment], ["start", fmtTime(run.start)],
        ["duration", run.duration_s === null ? "running" : fmtMs(run.duration_s * 1000)],
        ["source", run.metadata?.source], ["command", run.metadata?.command], ["parent", run.parent_id]]
        .filter(([, v]) => v).map(([k, v]) => [h("dt", k), h("dd", v)])),
  );
  root.append(h("p", h("a#run-traces", { href: filterLink("run", run.id) }, "Traces of this run →")));
  const params = Object.entries(run.params || {});
  root.append(h("h2", "Params"),
    params.length
      ? h("table.compact#run-params", h("tbody", params.map(([k, v]) => h("tr", h("td", k), h("td", fmtValue(v))))))
      : h("p.muted#run-params", "No params logged."));
  const tags = Object.entries(run.tags || {});
  if (tags.length) root.append(h("h2", "Tags"), h("p", tags.map(([k, v]) => h("span.badge", `${k}=${v}`))));
  const arts = run.artifacts || [];
  if (arts.length) {
    root.append(h("h2", "Artifacts"), h("table.compact#run-artifacts", h("tbody", arts.map((a) =>
      h("tr",
        h("td", a.digest ? h("a", { href: `/api/v1/artifacts/${encodeURIComponent(a.digest)}`, download: a.name }, a.name) : a.name),
        h("td", a.kind),
        h("td.num", a.size === null || a.size === undefined ? "" : `${fmtInt(a.size)} B`),
        h("td.muted", a.metadata && a.metadata.format === "luml" ? `tracehouse reproduce ${a.name}` : ""))))));
  }
  const series = new Map();
  for (const p of history) {
    if (!series.has(p.key)) series.set(p.key, []);
    series.get(p.key).push([p.step, p.value]);
  }
  const keys = [...series.keys()];
  const user = keys.filter((k) => !k.startsWith("system."));
  const system = keys.filter((k) => k.startsWith("system."));
  const section = (id, title, list) => {
    const box = h(`div.charts#${id}`);
    root.append(h("h2", title), box);
    for (const key of list) {
      const summary = run.metrics?.[key];
      const el = h("div.chart", { dataset: { metric: key } });
      box.append(el);
      chart(el).setOption({
        title: { text: key, subtext: summary ? `last ${fmtNum(summary.last)} · min ${fmtNum(summary.min)} · max ${fmtNum(summary.max)}` : "", left: 8, textStyle: { fontSize: 13 } },
        tooltip: { trigger: "axis" },
        grid: { left: 60, right: 20, top: 56, bottom: 50 },
        xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 26 },
        yAxis: { type: "value", scale: true },
        dataZoom: [{ type: "inside" }],
        series: [{ type: "line", name: key, showSymbol: series.get(key).length < 60, data: series.get(key) }],
      });
    }
  };
  if (user.length) section("run-charts", "Metrics", user);
  else root.append(h("p.muted", "No metrics logged."));
  if (system.length) section("system-charts", "System metrics", system);
}

// ---------- theme and start ----------

document.getElementById("theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem(THEME_KEY, next);
  render(); // charts pick their theme at creation
});
window.addEventListener("hashchange", render);
window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
render();
