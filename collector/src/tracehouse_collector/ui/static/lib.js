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
export function fmtCost(v) {
  const n = Number(v || 0);
  if (!n) return "–";
  return n >= 0.01 ? `$${n.toFixed(2)}` : `$${n.toPrecision(2)}`;
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
export function fmtNum(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : Number(v.toPrecision(4)).toString();
}
// A score is a number or {value, label}-like object, depending on the producer.
export function fmtScore(v) {
  if (v !== null && typeof v === "object") return fmtScore(v.value ?? v.avg ?? v.label ?? JSON.stringify(v));
  return typeof v === "number" ? fmtNum(v) : String(v);
}
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

export function emptyTraces() {
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

export function emptyRuns() {
  return h(
    "div.empty",
    h("h2", "No runs yet"),
    h("p", "Log an experiment run from Python, then reload:"),
    h("pre", h("code", 'import tracehouse\nwith tracehouse.run(experiment="demo", params={"lr": 0.01}) as run:\n    run.log_metric("loss", 0.5, step=1)')),
    h("p", "Or run ", h("code", "tracehouse demo"), " for sample runs."),
  );
}

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
