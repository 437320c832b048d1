import { h, api, fmtMs, fmtCost, fmtInt, fmtNum, fmtTime, errorBox, routeUrl, filterLink, scoreBadges } from "../lib.js";
import { exceptionView, jsonContainer, statusText, valueView } from "../views.js";
import { annotationsPanel } from "./evals.js";

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

function* walkSpans(spans, depth = 0) {
  for (const s of spans) {
    yield [s, depth];
    yield* walkSpans(s.children || [], depth + 1);
  }
}

export async function renderTrace(root, route, current) {
  const t = await api(`/api/v1/traces/${encodeURIComponent(route.id)}`);
  if (!current()) return;
  root.append(
    h("div.toolbar",
      h("a", { href: "#/traces" }, "← Traces"),
      h("h1", `Trace ${t.trace_id}`),
      h("span.status" + (t.status === "error" ? ".error" : ""), { title: t.status }),
      h("span.muted", `${fmtTime(t.start_time)} · ${fmtMs(t.duration_ms)} · ${t.span_count} spans · `,
        `${fmtInt(t.total_tokens)} tokens · ${fmtCost(t.cost_usd)}`,
        t.session_id ? [" · session ", h("a", { href: routeUrl("sessions", t.session_id) }, t.session_id)] : "",
        t.user_id ? [" · user ", h("a", { href: filterLink("user", t.user_id) }, t.user_id)] : "",
        t.run_id ? [" · run ", h("a#trace-run", { href: routeUrl("run", t.run_id), title: t.run_id }, await runName(t.run_id))] : ""),
      h("span#trace-scores", scoreBadges(t.scores)),
    ),
  );
  if (!current()) return;
  if (t.truncated) root.append(h("p.error-box", "This trace has more spans than shown."));
  const pane = h("div.pane#span-detail", h("p.muted", "Select a span to see its messages and attributes."));
  const tree = h("div#span-tree", ruler(t.duration_ms));
  const total = t.duration_ms || 1;
  let selected = null;
  let initial = null;
  const rowsOf = new Map(); // span id -> its row and its children's ids, for collapsing
  const collapsed = new Set();
  const setHidden = (id, hidden) => {
    for (const child of rowsOf.get(id).children) {
      rowsOf.get(child).row.hidden = hidden;
      // a collapsed child keeps its own subtree hidden when its parent opens again
      setHidden(child, hidden || collapsed.has(child));
    }
  };
  const toggle = (s, button) => {
    const closing = !collapsed.has(s.span_id);
    if (closing) collapsed.add(s.span_id);
    else collapsed.delete(s.span_id);
    button.textContent = closing ? "▸" : "▾";
    button.setAttribute("aria-expanded", String(!closing));
    setHidden(s.span_id, closing);
  };
  for (const [s, depth] of walkSpans(t.spans)) {
    const cls = ["span-row"];
    if (s.status === "Error" || s.error) cls.push("error");
    if (s.model) cls.push("llm");
    const left = (100 * s.offset_ms) / total;
    const width = Math.max((100 * s.duration_ms) / total, 0.3);
    const row = h(
      "div." + cls.join("."),
      { dataset: { spanId: s.span_id }, tabindex: 0 },
      h("div.span-name", { style: `padding-left:${depth * 16}px` }, h("div.span-title", { title: s.name },
        (s.children || []).length
          ? h("button.tree-toggle", { type: "button", title: "collapse / expand the children", "aria-expanded": "true",
              onclick: (e) => { e.stopPropagation(); toggle(s, e.currentTarget); } }, "▾")
          : h("span.tree-toggle"),
        h("span.span-icon", { title: spanType(s) }, SPAN_ICONS[spanType(s)]),
        h("span", s.name),
        s.model ? h("span.badge", s.model) : null,
        s.total_tokens ? h("span.badge.tokens", { title: tokensInOut(s) }, `${fmtInt(s.total_tokens)} tok`) : null,
        Number(s.cost_usd) ? h("span.badge.cost", fmtCost(s.cost_usd)) : null,
        s.orphan ? h("span.badge", { title: "its parent span never arrived" }, "orphan") : null),
        // the error on a line of its own under the name, whole in its tooltip
        s.error ? h("div.span-error", { title: errorText(s.error) }, errorText(s.error)) : null,
      ),
      h("div.waterfall",
        h("div.waterfall-bar", { style: `left:${Math.min(left, 99.7)}%;width:${Math.min(width, 100 - Math.min(left, 99.7))}%` }),
        ttftMark(s, total),
      ),
      h("span.waterfall-label", fmtMs(s.duration_ms)),
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
    rowsOf.set(s.span_id, { row, children: (s.children || []).map((c) => c.span_id) });
    if (s.span_id === route.params.get("span")) initial = select;
  }
  if (initial) initial();
  root.append(h("div.trace-layout", tree, pane));
  root.append(annotationsPanel(t.trace_id, () => selected?.dataset.spanId)); // pages/evals.js
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
    else if (p.type === "server_tool_call") out.push(h("div.server-tool-call", h("strong", `→ server tool call ${p.name || ""}`), h("pre.json", fmtJson(p.server_tool_call?.arguments ?? p.server_tool_call ?? p))));
    else if (p.type === "server_tool_call_response") out.push(h("div.server-tool-result", h("strong", "← server tool result"), h("pre.json", fmtJson(p.server_tool_call_response?.content ?? p.server_tool_call_response ?? p))));
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

const tokensInOut = (s) => `${fmtInt(s.input_tokens)} in / ${fmtInt(s.output_tokens)} out`;

// A run's name for the header (its id if the run is gone or unreadable).
async function runName(id) {
  try {
    return (await api(`/api/v1/runs/${encodeURIComponent(id)}`)).name || id.slice(0, 8);
  } catch {
    return id.slice(0, 8);
  }
}

// A step of 1, 2 or 5 times a power of ten that cuts `total` into at most `most` parts.
function niceStep(total, most = 6) {
  const raw = total / most;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

// The time ruler above the waterfall: ticks at round offsets from the trace's start.
function ruler(totalMs) {
  const total = totalMs || 1;
  const step = niceStep(total);
  const ticks = [];
  for (let i = 0; i * step <= total * (1 + 1e-9); i++) ticks.push(i * step);
  return h("div.ruler-row#trace-ruler", h("div.span-name.muted", "time from the trace's start"),
    h("div.waterfall.ruler-axis", ticks.map((t) =>
      // a tick near the right end writes its label to the left of its line, inside the ruler
      h(`span.ruler-tick${t > total * 0.9 && t > 0 ? ".end" : ""}`, { dataset: { ms: t }, style: `left:${(100 * t) / total}%` }, fmtMs(t)))),
    h("span.waterfall-label", fmtMs(totalMs)));
}

// Time to first token (ms) of a streamed call: gen_ai.response.time_to_first_chunk (seconds),
// or Tracehouse's name for it before the conventions had one.
const TTFT_KEYS = ["gen_ai.response.time_to_first_chunk", "tracehouse.response.time_to_first_chunk"];
function ttftMs(s) {
  const attrs = s.attributes || {};
  const key = TTFT_KEYS.find((k) => attrs[k] !== undefined && attrs[k] !== "");
  const seconds = key === undefined ? NaN : Number(attrs[key]);
  return Number.isFinite(seconds) ? seconds * 1000 : null;
}

function ttftMark(s, total) {
  const ms = ttftMs(s);
  if (ms === null) return null;
  const left = Math.min(100, (100 * (s.offset_ms + ms)) / total);
  return h("span.ttft-mark", { style: `left:${left}%`, title: `first token after ${fmtMs(ms)}`, dataset: { ms } });
}

const errorText = (e) => `${e.type ? e.type + ": " : ""}${e.message || "error"}`;

function spanDetail(s) {
  const out = [h("h2", s.name)];
  const ttft = ttftMs(s);
  const facts = [
    ["status", h(`span.span-status${s.status === "Error" ? ".error-text" : ""}`, { title: `OpenTelemetry status ${s.status}` }, statusText(s.status, s.status_message))],
    ["duration", fmtMs(s.duration_ms)],
    ["first token", ttft === null ? "" : h("span#span-ttft", `${fmtMs(ttft)} after the call started`)],
    ["start", `+${fmtMs(s.offset_ms)} (${s.start_time})`],
    ["service", s.service],
    ["operation", s.operation],
    ["model", s.model],
    ["provider", s.provider],
    ["tokens", s.total_tokens ? `${tokensInOut(s)}${s.tokens_estimated ? estimatedNote(s) : ""}` : ""],
    ["finish", (s.finish_reasons || []).join(", ")],
    ["cost", Number(s.cost_usd) ? fmtCost(s.cost_usd) : ""],
    ["span id", s.span_id],
  ].filter(([, v]) => v);
  out.push(h("dl.facts", facts.map(([k, v]) => [h("dt", k), h("dd", v)])));
  const exceptions = (s.events || []).filter((e) => e.name === "exception");
  // An exception event says the error with its stack trace; a bare error status says it here.
  if (s.error && !exceptions.length) out.push(errorBox("span-error", errorText(s.error)));
  exceptions.forEach((e, i) => out.push(exceptionView(e.attributes || {}, i ? null : "span-exception")));
  const attrs = s.attributes || {};
  const request = requestParams(attrs);
  if (request.length) out.push(h("h2", "Request and response"), h("dl.facts#request-params", request.map(([k, v]) => [h("dt", k), h("dd", v)])));
  const system = s.system_instructions ?? undefined;
  if (system !== undefined) out.push(h("h2", "System instructions"), ...messages({ role: "system", parts: Array.isArray(system) ? system : [system] }));
  const tools = s.tool_definitions || [];
  if (tools.length) out.push(h("h2", `Tools available (${tools.length})`), h("div#tool-definitions", tools.map(toolDefinition)));
  if (s.tool) {
    out.push(h("h2", `Tool ${s.tool.name}`), s.tool.call_id ? h("p.muted", `call ${s.tool.call_id}`) : null);
    if (s.tool.arguments !== null) out.push(h("div#tool-arguments", h("strong", "arguments"), valueView(s.tool.arguments)));
    if (s.tool.result !== null) out.push(h("div#tool-result", h("strong", "result"), valueView(s.tool.result)));
  }
  const docs = retrievalDocuments(attrs);
  if (docs) out.push(...documentsView(attrs, docs));
  if (s.input !== null && s.input !== undefined && !(s.tool && s.tool.arguments !== null)) out.push(h("h2", "Input"), ...messages(s.input));
  if (s.output !== null && s.output !== undefined && !(s.tool && s.tool.result !== null)) out.push(h("h2", "Output"), ...messages(s.output));
  const events = (s.events || []).filter((e) => e.name !== "exception");
  if (events.length) {
    out.push(h("h2", "Events"));
    for (const e of events) out.push(h("div.event", h("strong", `+${fmtMs(e.offset_ms)} ${e.name}`), attrTable(e.attributes || {})));
  }
  const search = h("input#attr-search", { type: "search", placeholder: "search attributes" });
  const table = attrTable(attrs, "attr-table");
  const attrRows = [...table.querySelectorAll("tr")];
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const r of attrRows) r.style.display = !q || r.dataset.key.includes(q) || r.dataset.value.includes(q) ? "" : "none";
  });
  out.push(h("h2", "Attributes"), search, table);
  const res = s.resource || {};
  if (Object.keys(res).length) out.push(h("h2", "Resource"), attrTable(res));
  return out;
}

// Key/value rows, keys sorted, each value by valueView (JSON collapsible, text wrapping).
function attrTable(attrs, id) {
  return h(`table.attrs${id ? "#" + id : ""}`, h("tbody", Object.entries(attrs)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => h("tr", { dataset: { key: k.toLowerCase(), value: String(v).toLowerCase().slice(0, 2000) } },
      h("td", k), h("td", valueView(v))))));
}

// The documents a retrieval returned: the GenAI conventions' gen_ai.retrieval.documents (a JSON
// array of {id, score, ...}), else OpenInference's flattened retrieval.documents.<i>.document.*.
// null when the span has none.
function retrievalDocuments(attrs) {
  const semconv = jsonContainer(attrs["gen_ai.retrieval.documents"]);
  if (Array.isArray(semconv)) return semconv.map((d) => (d && typeof d === "object" ? d : { content: d }));
  const flat = new Map();
  for (const [k, v] of Object.entries(attrs)) {
    const m = /^retrieval\.documents\.(\d+)\.document\.(id|content|score|metadata)$/.exec(k);
    if (!m) continue;
    if (!flat.has(+m[1])) flat.set(+m[1], {});
    flat.get(+m[1])[m[2]] = v;
  }
  return flat.size ? [...flat].sort(([a], [b]) => a - b).map(([, d]) => d) : null;
}

function documentsView(attrs, docs) {
  const query = attrs["gen_ai.retrieval.query.text"] ?? attrs["input.value"];
  const source = attrs["gen_ai.data_source.id"];
  return [
    h("h2", `Documents (${docs.length})`),
    query || source ? h("p.muted#retrieval-query", source ? `from ${source}` : "", query && source ? " · " : "", query ? `query: ${query}` : "") : null,
    h("ol#retrieval-documents", docs.map((d) => {
      const { id, score, content, metadata, ...rest } = d;
      const more = metadata !== undefined ? metadata : Object.keys(rest).length ? rest : undefined;
      return h("li.document", { dataset: { id: id ?? "" } },
        h("div.document-head", id !== undefined ? h("strong.document-id", String(id)) : null,
          score !== undefined && score !== "" ? h("span.badge.document-score", { title: "relevance score" }, `score ${fmtNum(Number(score))}`) : null),
        content !== undefined ? h("div.document-content", String(content)) : null,
        more !== undefined ? valueView(more) : null);
    })),
  ];
}

// gen_ai.request.* (temperature, max_tokens, ...) and response facts, as "name: value" pairs;
// a list (stop sequences) reads as its items, comma-separated. Finish reasons are the "finish"
// fact above, in the conventions' values.
const RESPONSE_FACTS = ["gen_ai.response.id", "gen_ai.output.type", "gen_ai.conversation.id"];
function requestParams(attrs) {
  const shown = (v) => {
    const parsed = parseJson(v);
    return Array.isArray(parsed) ? parsed.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ") : v;
  };
  const out = Object.entries(attrs)
    .filter(([k]) => k.startsWith("gen_ai.request.") && k !== "gen_ai.request.model")
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => [k.slice("gen_ai.request.".length), shown(v)]);
  for (const k of RESPONSE_FACTS) if (attrs[k]) out.push([k.replace(/^gen_ai\./, ""), shown(attrs[k])]);
  return out;
}

function parseJson(text) {
  if (text === undefined || text === null || text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// One tool definition as the API gives it, whatever the provider's shape was: {type, name,
// description, parameters} (GenAI conventions v1.41.1; see query/genai_content.py). A built-in
// tool without a schema ({type: "web_search"}, Gemini's {google_search: {}}) is named by its
// type or key and shown whole.
function toolDefinition(tool) {
  const fn = tool && typeof tool === "object" ? tool : {};
  const name = fn.name || fn.type || Object.keys(fn)[0] || "tool";
  return h("details.tool-def", { dataset: { tool: name } },
    h("summary", h("strong.tool-name", name), fn.description ? h("span.muted.tool-description", ` ${fn.description}`) : null),
    h("pre.json.tool-schema", JSON.stringify(fn.parameters ?? tool, null, 2)));
}

// Tokens counted from content that was cut before it was stored are a lower bound.
const estimatedNote = (s) => ((s.content_truncated || []).length ? " (estimated from truncated content: at least)" : " (estimated)");
