import { h, ApiError, api, chart, fmtInt, fmtValue, routeUrl } from "../lib.js";

// #/sql?q=...&x=col&y=col,col&type=line|bar: the read-only SQL console (POST /api/v1/sql, the
// same checks and limits as `tracehouse sql`), its result as a table and a quick chart.

const EXAMPLES = [
  ["LLM calls by model, last 24 h",
    "SELECT GenAIRequestModel AS model, count() AS calls, sum(TotalTokens) AS tokens,\n       round(sum(TotalCostUSD), 4) AS cost_usd\nFROM otel_traces\nWHERE GenAIOperation = 'chat' AND Timestamp > now() - INTERVAL 1 DAY\nGROUP BY model ORDER BY calls DESC, model"],
  ["Spans per hour, last 7 days",
    "SELECT toStartOfHour(Timestamp) AS hour, count() AS spans, countIf(StatusCode = 'Error') AS errors\nFROM otel_traces\nWHERE Timestamp > now() - INTERVAL 7 DAY\nGROUP BY hour ORDER BY hour"],
  ["Latest runs",
    "SELECT RunId, Experiment, Name, Status, StartTime\nFROM runs FINAL\nORDER BY StartTime DESC LIMIT 20"],
  ["A metric's curve",
    "SELECT Step, argMax(Value, Timestamp) AS value\nFROM run_metrics\nWHERE Key = 'train/loss'\nGROUP BY Step ORDER BY Step LIMIT 1000"],
  ["Mean score by name",
    "SELECT Name, count() AS n, avg(Value) AS mean FROM otel_scores GROUP BY Name ORDER BY Name"],
];
const TABLES = ["otel_traces", "otel_logs", "otel_scores", "llm_usage_1m", "llm_usage_1h", "runs", "run_params", "run_metrics", "run_artifacts", "models"];
const SHOWN_ROWS = 1000;

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const looksTime = (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(v);

export async function renderSql(root, route, current) {
  const p = route.params;
  const query = p.get("q") || "";
  const editor = h("textarea#sql-editor", { spellcheck: "false", rows: 8, placeholder: "SELECT ... (Ctrl+Enter runs it)" });
  editor.value = query;
  const run = () => {
    const q = editor.value.trim();
    if (!q) return;
    // The same query again still runs: the hash would not change, so render directly.
    const target = routeUrl("sql", "", { q });
    if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = target;
  };
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
  root.append(
    h("div.toolbar", h("h1", "SQL"), h("span.muted", "read-only: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN")),
    editor,
    h("div.toolbar", h("button#sql-run", { type: "button", onclick: run }, "Run (Ctrl+Enter)"),
      h("span.muted", "tables: ", TABLES.map((t, i) => [i ? ", " : "", h("code", t)]))),
  );
  // The examples stay at hand after a query runs (folded away under its result's toolbar).
  root.append(h("details.sql-examples", { open: !query },
    h("summary", "Examples"),
    h("ul#sql-examples", EXAMPLES.map(([title, sql]) => h("li", h("a", { href: routeUrl("sql", "", { q: sql }) }, title))))));
  if (!query) return;
  const started = performance.now();
  let result;
  try {
    result = await api("/api/v1/sql", null, { sql: query });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (current()) root.append(errorBoxPre(err.message));
    return;
  }
  if (!current()) return;
  const ms = performance.now() - started;
  const { columns, rows } = result;
  root.append(h("p.muted#sql-status", `${fmtInt(rows.length) || 0} row${rows.length === 1 ? "" : "s"} in ${ms.toFixed(0)} ms`,
    rows.length > SHOWN_ROWS ? ` (the first ${fmtInt(SHOWN_ROWS)} shown; the chart uses them all)` : ""));
  if (!rows.length) return;
  quickChart(root, columns, rows, p);
  root.append(h("div.table-scroll", h("table#sql-result",
    h("thead", h("tr", columns.map((c) => h("th", c)))),
    h("tbody", rows.slice(0, SHOWN_ROWS).map((r) => h("tr", r.map((v) => h(isNum(v) ? "td.num" : "td", v === null ? "NULL" : fmtValue(v)))))))));
}

function errorBoxPre(message) {
  return h("pre.error-box#sql-error", { role: "alert" }, message);
}

// x: the chosen column, else the first time-like or text column; y: numeric columns.
// Decimals (costs) arrive as strings, to keep their precision: they chart as numbers too.
const numLike = (v) => isNum(v) || (typeof v === "string" && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v));

// How big a column's numbers are (the largest magnitude), to tell apart series that need an axis
// of their own: a count of thousands drawn beside a cost of cents would flatten the cost.
const magnitude = (rows, i) => Math.max(0, ...rows.map((r) => Math.abs(Number(r[i])) || 0));
const SAME_AXIS_RATIO = 10;

function quickChart(root, columns, rows, p) {
  const numeric = columns.filter((_, i) => rows.some((r) => numLike(r[i])) && rows.every((r) => r[i] === null || numLike(r[i])));
  const x = columns.includes(p.get("x")) ? p.get("x")
    : columns.find((c, i) => looksTime(rows[0][i])) || columns.find((c) => !numeric.includes(c)) || columns[0];
  const wanted = (p.get("y") || "").split(",").filter((c) => numeric.includes(c) && c !== x);
  const ys = wanted.length ? wanted : numeric.filter((c) => c !== x).slice(0, 4);
  if (!ys.length) return;
  const xi = columns.indexOf(x);
  const xKind = rows.every((r) => looksTime(r[xi])) ? "time" : rows.every((r) => numLike(r[xi])) ? "value" : "category";
  // Bars for categories (a line between categories would suggest an order they lack), lines over time and numbers.
  const type = ["line", "bar"].includes(p.get("type")) ? p.get("type") : xKind === "category" ? "bar" : "line";
  const set = (changes) => {
    const q = Object.fromEntries(p.entries());
    location.hash = routeUrl("sql", "", { ...q, ...changes });
  };
  const yChoices = numeric.filter((c) => c !== x);
  root.append(
    h("div.toolbar#sql-chart-options",
      h("label", "x ", h("select#chart-x", { onchange: (e) => set({ x: e.target.value, y: "" }) }, columns.map((c) => h("option", { value: c, selected: c === x }, c)))),
      h("fieldset#chart-y", h("legend", "y"), yChoices.map((c) =>
        h("label", h("input", { type: "checkbox", checked: ys.includes(c), dataset: { column: c }, onchange: (e) => {
          const next = yChoices.filter((y) => (y === c ? e.target.checked : ys.includes(y)));
          set({ y: next.join(",") || ys.filter((y) => y !== c).join(",") });
        } }), ` ${c}`))),
      h("label", h("select#chart-type", { onchange: (e) => set({ type: e.target.value }) },
        ["line", "bar"].map((t) => h("option", { value: t, selected: t === type }, t))))),
  );
  // The first y sets the left axis; the first y whose numbers are more than ten times bigger or
  // smaller sets a right-hand one, and every other y goes on the axis nearer its size (log scale).
  const logSize = (y) => Math.log10(magnitude(rows, columns.indexOf(y)) || 1);
  const left = logSize(ys[0]);
  const rightY = ys.find((y) => Math.abs(logSize(y) - left) > Math.log10(SAME_AXIS_RATIO));
  const right = rightY === undefined ? null : logSize(rightY);
  const axes = ys.map((y) => (right !== null && Math.abs(logSize(y) - right) < Math.abs(logSize(y) - left) ? 1 : 0));
  const twoAxes = axes.includes(1);
  const axisName = (i) => ys.filter((_, k) => axes[k] === i).join(", ");
  const el = h("div.chart#sql-chart");
  root.append(el);
  const xValue = (v) => (xKind === "time" ? Date.parse(/Z|[+-]\d{2}:?\d{2}$/.test(v) ? v : v.replace(" ", "T") + "Z") : Number(v));
  chart(el).setOption({
    tooltip: { trigger: "axis" },
    legend: { top: 4, type: "scroll" },
    grid: { left: 16, right: 16, top: 56, bottom: 16, containLabel: true },
    xAxis: xKind === "category" ? { type: "category", data: rows.map((r) => fmtValue(r[xi])) } : { type: xKind, scale: true },
    yAxis: (twoAxes ? [0, 1] : [0]).map((i) => ({ type: "value", scale: type === "line", name: axisName(i), nameTextStyle: { align: i ? "right" : "left" } })),
    series: ys.map((y, k) => {
      const yi = columns.indexOf(y);
      return {
        name: y, type, showSymbol: rows.length < 60, yAxisIndex: axes[k],
        data: rows.map((r) => {
          const y = r[yi] === null ? null : Number(r[yi]);
          return xKind === "category" ? y : [xValue(r[xi]), y];
        }),
      };
    }),
  });
}
