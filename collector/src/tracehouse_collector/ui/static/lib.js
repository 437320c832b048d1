// Shared helpers of the web UI: DOM building, REST calls, formatting, routing, charts.
// All user data goes into the page through textContent (the h() helper), never as HTML.

// ---------- small helpers ----------

// h("div.cls#id", {attrs}, children...): children are nodes or text (set as text, never parsed).
export function h(spec, attrs, ...children) {
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

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export class ApiError extends Error {}

// Raised for a 401: the collector wants an API key. Not an ApiError, so pages that show API
// errors inline let it through to app.js, which shows the sign-in form instead of the page.
export class AuthError extends Error {}

// The API key the user signed in with: localStorage when "remember" was ticked, else this tab only.
const KEY_NAME = "tracehouse.apiKey";
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "",
  set(key, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
  },
  clear() {
    sessionStorage.removeItem(KEY_NAME);
    localStorage.removeItem(KEY_NAME);
  },
};

// fetch() of a collector URL with the API key, if any; a 401 becomes AuthError.
export async function apiFetch(url, opts = {}) {
  const key = apiKey.get();
  const headers = new Headers(opts.headers || {});
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const resp = await fetch(url, { ...opts, headers });
  if (resp.status === 401) throw new AuthError(key ? "The API key was not accepted." : "This collector needs an API key.");
  return resp;
}

export async function api(path, params, body) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const opts = body ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {};
  const resp = await apiFetch(url, opts);
  let data = null;
  try {
    data = await resp.json();
  } catch {
    /* not JSON: reported below by status */
  }
  if (!resp.ok) throw new ApiError((data && data.error) || `${resp.status} ${resp.statusText}`);
  return data;
}

export const records = (page) => page.rows.map((r) => Object.fromEntries(page.columns.map((c, i) => [c, r[i]])));

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 60000) return `${(ms / 60000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}
// A percentile of an aggregate row: "≈" when the rollup's sketch answered (percentiles_error > 0).
export function fmtPercentile(row, key) {
  const text = fmtMs(row[key]);
  return Number(row.percentiles_error) > 0 && row[key] !== null && row[key] !== undefined ? `≈${text}` : text;
}
export function percentileNote(row) {
  const e = Number(row.percentiles_error);
  return e > 0 ? `approximate: within ${+(e * 100).toFixed(2)}% of an exact value (rollup sketch)` : "exact";
}
// USD, from the exact decimal text the API sends (or a number): 4 significant digits and never
// fewer than 2 decimals ($0.0261, $12.35, $1,234.57), rounded half up on the digits themselves,
// trailing zeros past the cents dropped. The CLI table uses the same rule (formatting.py).
export function fmtCost(v) {
  if (v === null || v === undefined || v === "") return "–";
  const exact = typeof v === "string" && !/e/i.test(v); // decimal text: rounded on its own digits
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(exact ? v.trim() : Number(v).toFixed(12));
  if (!m) return String(v);
  const [, sign, rawInt, frac = ""] = m;
  const int = rawInt.replace(/^0+(?=\d)/, "") || "0";
  const firstFrac = frac.search(/[1-9]/);
  const adjusted = int !== "0" ? int.length - 1 : firstFrac < 0 ? 0 : -(firstFrac + 1);
  const decimals = Math.min(12, Math.max(2, 3 - adjusted));
  const kept = BigInt(int + frac.padEnd(decimals, "0").slice(0, decimals)) + ((frac[decimals] || "0") >= "5" ? 1n : 0n);
  const digits = kept.toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, -decimals).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = digits.slice(-decimals).replace(/0+$/, "").padEnd(2, "0");
  return `${sign && kept ? "-" : ""}$${whole}.${cents}`;
}
export const fmtInt = (n) => (n ? Number(n).toLocaleString("en-US") : "–");
// The mark of a group with unpriced calls: a badge and how many calls have no price.
export function noPrice(r) {
  const n = Number(r.unpriced_calls);
  if (!n) return null;
  return h("span.no-price-mark", { title: `${fmtInt(r.unpriced_tokens)} tokens with no known price, not in the cost; list the models with: tracehouse query cost --unpriced` },
    h("span.badge.no-price", "no price"),
    h("span.unpriced-calls", ` ${fmtInt(n)} unpriced call${n === 1 ? "" : "s"}`));
}
// Numbers (scores, metrics): integers whole, others to 4 significant digits (0.7438, 1235).
export function fmtNum(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : Number(v.toPrecision(4)).toString();
}
// A score is a number or {value, label}-like object, depending on the producer.
export function fmtScore(v) {
  if (v !== null && typeof v === "object") return fmtScore(v.value ?? v.avg ?? v.label ?? JSON.stringify(v));
  return typeof v === "number" ? fmtNum(v) : String(v);
}
// A trace's or turn's scores ({name: mean or label}) as badges "name value".
export const scoreBadges = (scores) =>
  Object.entries(scores || {}).map(([k, v]) => h("span.badge.score", { title: `score ${k}` }, `${k} ${fmtScore(v)}`));
export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
export const fmtValue = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : fmtNum(v));

export function sinceSeconds(since) {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(since || "");
  if (!m) return 86400;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
}

export function errorBox(id, message) {
  return h(`div.error-box#${id}`, { role: "alert" }, message);
}

// Where this collector takes OTLP: its own origin for OTLP/HTTP, and the gRPC port /healthz names
// (not the default ports, which a collector started with other ones does not listen on).
export async function emptyTraces() {
  let grpcPort = null;
  try {
    grpcPort = (await (await apiFetch("/healthz")).json()).grpc_port ?? null;
  } catch {
    /* an older collector: name the HTTP endpoint only */
  }
  return h(
    "div.empty",
    h("h2", "No traces yet"),
    h("p", "Send some data to this collector, then reload:"),
    h("ul",
      h("li", h("code", `tracehouse demo --server ${location.origin}`), " fills it with a sample LLM app and training runs."),
      h("li", h("code", `OTEL_EXPORTER_OTLP_ENDPOINT=${location.origin} TRACEHOUSE_INSTRUMENT=1 python app.py`), " traces your own app's LLM calls."),
      h("li#otlp-endpoints", "Any OpenTelemetry SDK can export OTLP to this collector: HTTP ", h("code", location.origin),
        grpcPort ? [", gRPC ", h("code", `${location.hostname}:${grpcPort}`)] : null, "."),
    ),
  );
}

export function emptyRuns() {
  return h(
    "div.empty",
    h("h2", "No runs yet"),
    h("p", "Log an experiment run from Python, then reload:"),
    h("pre", h("code", 'import tracehouse\nwith tracehouse.run(experiment="demo", params={"lr": 0.01}) as run:\n    run.log_metric("loss", 0.5, step=1)')),
    h("p", "Or run ", h("code", "tracehouse demo"), " for sample runs."),
  );
}

// ---------- colours and time buckets of charts ----------

// One colour per run or model everywhere, derived from its identity (its id or name), so the
// same run keeps its colour on every chart of every page, whatever else is drawn beside it.
// A hue anywhere on the wheel (not a short palette, where two of a handful of runs often share a
// colour), at one of a few lightness and saturation steps.
// Labels for runs shown together (legends, headers): each run's name, and its id's first six
// characters only where two of them share a name, so every label names one run.
export function runLabels(runs) {
  const count = new Map();
  for (const r of runs) count.set(r.name, (count.get(r.name) || 0) + 1);
  return new Map(runs.map((r) => [r.id, count.get(r.name) > 1 || !r.name ? `${r.name || "run"} (${r.id.slice(0, 6)})` : r.name]));
}

export function colorFor(identity) {
  let hash = 2166136261; // FNV-1a over the UTF-16 code units
  for (let i = 0; i < String(identity).length; i++) hash = Math.imul(hash ^ String(identity).charCodeAt(i), 16777619) >>> 0;
  const hue = hash % 360, sat = 55 + ((hash >>> 9) % 4) * 10, light = 40 + ((hash >>> 13) % 3) * 8;
  return `hsl(${hue}, ${sat}%, ${light}%)`;
}

const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
// Every bucket start (ms, UTC) of the last `secs` seconds, oldest first: the x values every series
// of a chart shares, so stacks add up per time bucket and an empty bucket is a gap, not a bridge.
export function timeBuckets(bucket, secs, now = Date.now()) {
  const step = BUCKET_MS[bucket];
  const out = [];
  for (let t = Math.floor((now - secs * 1000) / step) * step; t <= now; t += step) out.push(t);
  return out;
}
// The API's bucket text ("2024-05-01 13:00:00", UTC) as ms.
export const bucketTime = (t) => Date.parse(String(t).replace(" ", "T") + (/Z|[+-]\d\d:?\d\d$/.test(String(t)) ? "" : "Z"));
// [[t, value or null], ...] over `buckets`, from rows keyed by their bucket text.
export function onBuckets(buckets, rows, bucketKey, value) {
  const at = new Map(rows.map((r) => [bucketTime(r[bucketKey]), r]));
  return buckets.map((t) => {
    const r = at.get(t);
    const v = r === undefined ? null : value(r);
    return [t, v === null || v === undefined ? null : Number(v)];
  });
}
// Tooltip and axis formatters with the unit.
const fmtCount = (v) => Number(v).toLocaleString("en-US");
export const unitFormat = { ms: fmtMs, usd: fmtCost, tokens: (v) => `${fmtCount(v)} tokens`, count: fmtCount, score: fmtNum };
// Line styles that keep equal series apart: widths, dashes and symbols differ.
export const LEVEL_STYLES = [
  { lineStyle: { width: 4, type: "solid" }, symbol: "circle", symbolSize: 8 },
  { lineStyle: { width: 2.5, type: "dashed" }, symbol: "triangle", symbolSize: 7 },
  { lineStyle: { width: 1.5, type: "dotted" }, symbol: "diamond", symbolSize: 6 },
];

// ---------- routing: #/page/id?query ----------

export function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?", 2);
  const [page, ...rest] = path.split("/");
  return { page, id: rest.map(decodeURIComponent).join("/"), params: new URLSearchParams(query || "") };
}

export function routeUrl(page, id, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const qs = q.toString();
  return `#/${page}${id ? "/" + encodeURIComponent(id) : ""}${qs ? "?" + qs : ""}`;
}


// ECharts instances of the current page, disposed on navigation.
export const charts = [];

export function disposeCharts() {
  for (const c of charts.splice(0)) c.dispose();
}

export function chart(el) {
  const dark = document.documentElement.dataset.theme === "dark";
  const c = window.echarts.init(el, dark ? "dark" : null, { renderer: "canvas" });
  // The page's own background in both themes; no animation, so a chart shows its data at once.
  c.setOption({ backgroundColor: "transparent", animation: false });
  requestAnimationFrame(() => c.isDisposed() || c.resize()); // once the grid has laid out its siblings
  charts.push(c);
  return c;
}

export const RANGES = ["15m", "1h", "6h", "24h", "7d", "30d"];

export function rangeSelect(value, onChange) {
  return h(
    "select#range",
    { title: "Time range", onchange: (e) => onChange(e.target.value) },
    RANGES.map((r) => h("option", { value: r, selected: r === value }, `last ${r}`)),
  );
}


// The traces list filtered to one value of a field, over the last 30 days.
export function filterLink(field, value) {
  return routeUrl("traces", "", { since: "30d", where: `${field} = '${String(value).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'` });
}


// ECharts renders a tooltip formatter's string as HTML: user data in one must be escaped.
export function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// A download link to a collector URL. A plain link cannot carry the API key, so when one is
// stored the click fetches the file with it and saves the bytes under `name`.
export function downloadLink(href, name, label, attrs = {}) {
  const a = h("a", { ...attrs, href, download: name }, label);
  a.addEventListener("click", async (e) => {
    if (!apiKey.get()) return;
    e.preventDefault();
    const resp = await apiFetch(href);
    if (!resp.ok) return;
    const url = URL.createObjectURL(await resp.blob());
    const tmp = h("a", { href: url, download: name });
    document.body.append(tmp);
    tmp.click();
    tmp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return a;
}

// The filter-language box of a list page (#where, Enter or Apply): onApply gets the trimmed text.
// Returns [form, input]; the input's current text is there for a page that keeps it on other changes.
export function whereForm(value, example, onApply) {
  const input = h("input#where", { type: "search", placeholder: `filter, e.g. ${example} (press Enter)`, value });
  const form = h("form", { style: "display:contents", onsubmit: (e) => { e.preventDefault(); onApply(input.value.trim()); } },
    input, h("button", { type: "submit" }, "Apply"));
  return [form, input];
}
