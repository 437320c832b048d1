import { h, append, ApiError, api, chart, colorFor, runLabels, downloadLink, escapeHtml, fmtCost, fmtInt, fmtMs, fmtNum, fmtTime, fmtValue, errorBox, emptyRuns, routeUrl, whereForm } from "../lib.js";

// #/runs: the runs table (sortable, column chooser, filter, selection) and below it the chart
// views: metric curves of the selected runs (smoothing, log scale, x = step or time), parallel
// coordinates over params and a metric, and a scatter of any two columns, both over the shown runs.

// Fixed columns: [label, sort value, cell].
const FIXED = {
  status: ["status", (r) => r.status, (r) => [h(`span.status${r.status === "failed" ? ".error" : ""}`), " ", r.status]],
  name: ["name", (r) => r.name, (r) => h("a.clip", { href: routeUrl("run", r.id), title: r.name }, r.name)],
  experiment: ["experiment", (r) => r.experiment, (r) => h("span.clip", { title: r.experiment }, r.experiment)],
  start: ["start", (r) => r.start || "", (r) => h("span", { title: fmtTime(r.start) }, fmtShortTime(r.start))],
  duration: ["duration", (r) => r.duration_s ?? -1, (r) => (r.duration_s === null ? "running" : fmtMs(r.duration_s * 1000))],
  models: ["model files", (r) => (r.models || []).length, (r) => (r.models || []).map((m) =>
    downloadLink(`/api/v1/artifacts/${encodeURIComponent(m.digest)}?name=${encodeURIComponent(m.name)}`, m.name, m.name,
      { class: "badge", title: `${m.digest.slice(0, 12)} · ${fmtInt(m.size)} B` }))],
  llm_calls: ["LLM calls", (r) => r.llm?.calls, (r) => fmtInt(r.llm?.calls)],
  llm_tokens: ["LLM tokens", (r) => r.llm?.total_tokens, (r) => fmtInt(r.llm?.total_tokens)],
  llm_cost: ["LLM cost", (r) => r.llm?.cost_usd, (r) => (r.llm ? fmtCost(r.llm.cost_usd) : "")],
};

// "Dec 3, 10:37": a start time in the width of a table column (the whole time in its tooltip).
const fmtShortTime = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "–");

// A column's value for sorting and charts: fixed columns, params.k, metrics.k, scores.k.
function valueOf(col) {
  if (FIXED[col]) return FIXED[col][1];
  const [kind, ...rest] = col.split(".");
  const key = rest.join(".");
  if (kind === "params") return (r) => r.params[key];
  if (kind === "metrics") return (r) => r.metrics[key];
  if (kind === "scores") return (r) => r.llm?.scores?.[key];
  return FIXED.start[1];
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

// Exponential moving average with the start-up bias removed (as TensorBoard smooths curves).
function smooth(points, weight) {
  if (!weight) return points;
  let last = 0;
  return points.map(([x, y], i) => {
    last = last * weight + (1 - weight) * y;
    return [x, last / (1 - weight ** (i + 1))];
  });
}

// ---- what the browser remembers: pinned runs, the last column choice, named column sets ----

const PINNED_KEY = "tracehouse.runs.pinned";
const COLUMNS_KEY = "tracehouse.runs.columns"; // {experiment filter: hidden columns} of the last choice
const SETS_KEY = "tracehouse.runs.columnSets"; // {name: shown columns}
const stored = (key, fallback) => {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
};
const store = (key, value) => localStorage.setItem(key, JSON.stringify(value));

// The default columns fit a 1,366 px laptop screen: the fixed ones, then the params and the
// metrics most runs have, up to this many columns in all (the chooser shows the rest).
const DEFAULT_COLUMNS = 13;
const NONE_HIDDEN = "none"; // hide=none: every column shown (an empty hide means "the default")

function defaultHidden(fixed, byCoverage, sort, oneExperiment) {
  // the experiment column says nothing when every run shown is of one experiment
  const dropped = oneExperiment && sort !== "experiment" ? ["experiment"] : [];
  const room = Math.max(DEFAULT_COLUMNS - fixed.length + dropped.length, 2);
  const params = byCoverage.filter((c) => c.startsWith("params."));
  const values = byCoverage.filter((c) => !c.startsWith("params."));
  const nParams = Math.min(params.length, Math.max(room - values.length, Math.ceil(room / 2)));
  const shown = new Set([...params.slice(0, nParams), ...values.slice(0, room - nParams), sort]);
  return [...dropped, ...byCoverage.filter((c) => !shown.has(c))];
}

// A group's summary in a column: sums of what adds up (LLM calls, tokens, cost), means of
// params, metrics and scores; null where a column has no numbers in the group.
const SUMMED = new Set(["llm_calls", "llm_tokens", "llm_cost"]);
function groupSummary(col, members) {
  const nums = members.map(valueOf(col)).filter(isNum);
  if (!nums.length || !(SUMMED.has(col) || /^(params|metrics|scores)\./.test(col))) return null;
  const total = nums.reduce((a, b) => a + b, 0);
  return SUMMED.has(col) ? { kind: "sum", value: total, n: nums.length } : { kind: "mean", value: total / nums.length, n: nums.length };
}

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

export async function renderRuns(root, route, current) {
  const p = route.params;
  const sort = p.get("sort") || "start";
  const dir = p.get("dir") || (sort === "start" ? "desc" : "asc");
  const selected = new Set((p.get("sel") || "").split(",").filter(Boolean));
  const experiment = p.get("experiment") || "";
  const where = p.get("where") || "";
  const group = p.get("group") || "";
  const remembered = stored(COLUMNS_KEY, {})[experiment];
  const hideParam = p.get("hide") || (remembered === undefined ? "" : remembered.join(",") || NONE_HIDDEN);
  const opts = { smooth: Number(p.get("smooth") || 0), log: p.get("log") === "1", x: p.get("x") === "time" ? "time" : "step" };
  const state = () => ({
    experiment, where, sort, dir, group, sel: [...selected].join(","), hide: p.get("hide") || "",
    smooth: opts.smooth || "", log: opts.log ? "1" : "", x: opts.x === "time" ? "time" : "",
    pc: p.get("pc") || "", sx: p.get("sx") || "", sy: p.get("sy") || "",
  });
  const go = (changes) => (location.hash = routeUrl("runs", "", { ...state(), ...changes }));
  const toolbar = h("div.toolbar",
    h("h1", "Runs"),
    h("input#experiment", { type: "search", placeholder: "experiment", value: experiment, size: 16, onchange: (e) => go({ experiment: e.target.value.trim() }) }),
    whereForm(where, "params.lr > 0.001 and status = 'finished'", (w) => go({ where: w }))[0],
  );
  root.append(toolbar);
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
  const scoreKeys = [...new Set(runs.flatMap((r) => Object.keys(r.llm?.scores || {})))].sort();
  const tagKeys = [...new Set(runs.flatMap((r) => Object.keys(r.tags || {})))].sort();
  const anyLlm = runs.some((r) => r.llm);
  const anyModel = runs.some((r) => (r.models || []).length);
  const fixed = Object.keys(FIXED).filter((c) => (c.startsWith("llm_") ? anyLlm : c === "models" ? anyModel : true));
  const valueCols = [...paramKeys.map((k) => `params.${k}`), ...metricKeys.map((k) => `metrics.${k}`), ...scoreKeys.map((k) => `scores.${k}`)];
  const columns = [...fixed, ...valueCols];
  // Columns most runs have come first, so the default columns and chart axes are the informative ones.
  const coverage = (c) => runs.filter((r) => isNum(valueOf(c)(r))).length;
  const byCoverage = (cols) => cols.map((c) => [c, coverage(c)]).filter(([, n]) => n).sort((a, b) => b[1] - a[1]).map(([c]) => c);
  // The table's default columns: those most runs have a value in (numbers or not), params first.
  const filled = (c) => runs.filter((r) => { const v = valueOf(c)(r); return v !== undefined && v !== null; }).length;
  const ranked = valueCols.map((c) => [c, filled(c)]).sort((a, b) => b[1] - a[1]).map(([c]) => c);
  const hidden = new Set(hideParam === NONE_HIDDEN ? [] : hideParam ? hideParam.split(",") : defaultHidden(fixed, ranked, sort, new Set(runs.map((r) => r.experiment)).size === 1));
  const shown = columns.filter((c) => !hidden.has(c));
  const label = (c) => (FIXED[c] ? FIXED[c][0] : c.split(".").slice(1).join("."));
  // A column choice made here is the URL's, and this browser's next default for these runs.
  const chooseHidden = (next) => {
    store(COLUMNS_KEY, { ...stored(COLUMNS_KEY, {}), [experiment]: [...next] });
    go({ hide: [...next].join(",") || NONE_HIDDEN });
  };
  const pinned = new Set(stored(PINNED_KEY, []));
  const groupBy = group && (group === "experiment" || group === "status" || /^(params|tags)\./.test(group)) ? group : "";

  // Selection, grouping and the column chooser live in the toolbar.
  const sets = stored(SETS_KEY, {});
  const setName = h("input#column-set-name", { type: "text", placeholder: "name this column set", size: 18 });
  append(toolbar, [
    h("span.muted#selection-count", selected.size ? `${selected.size} selected` : ""),
    selected.size >= 2 ? h("a.button#compare-selected", { href: routeUrl("compare", "", { ids: [...selected].join(",") }) }, "Compare selected") : null,
    h("label", "group by ", h("select#group-by", { onchange: (e) => go({ group: e.target.value }) },
      h("option", { value: "" }, "none"),
      ["experiment", "status", ...paramKeys.map((k) => `params.${k}`), ...tagKeys.map((k) => `tags.${k}`)].map((g) =>
        h("option", { value: g, selected: g === groupBy }, g)))),
    h("details.column-chooser#column-chooser",
      h("summary", `Columns (${shown.length}/${columns.length})`),
      h("div.chooser-list",
        h("div.column-sets",
          Object.keys(sets).sort().map((name) => h("button.column-set", { type: "button", dataset: { name }, title: sets[name].join(", "),
            onclick: () => chooseHidden(columns.filter((c) => !sets[name].includes(c))) }, name)),
          h("div", setName, h("button#save-column-set", { type: "button", onclick: () => {
            const name = setName.value.trim();
            if (!name) return;
            store(SETS_KEY, { ...stored(SETS_KEY, {}), [name]: shown });
            rerender();
          } }, "save"))),
        h("button#default-columns", { type: "button", onclick: () => {
          const all = stored(COLUMNS_KEY, {});
          delete all[experiment];
          store(COLUMNS_KEY, all);
          go({ hide: "" });
        } }, "default columns"),
        columns.map((c) =>
          h("label", { title: c }, h("input", { type: "checkbox", checked: !hidden.has(c), dataset: { column: c },
            onchange: (e) => { const next = new Set(hidden); if (e.target.checked) next.delete(c); else next.add(c); chooseHidden(next); } }),
          ` ${c.includes(".") ? c : label(c)}`)))),
  ]);

  const get = valueOf(sort);
  const sorted = [...runs].sort((a, b) => {
    const pin = Number(pinned.has(b.id)) - Number(pinned.has(a.id)); // pinned runs first
    if (pin) return pin;
    const x = get(a), y = get(b);
    if (x === undefined || x === null || y === undefined || y === null) return x === undefined || x === null ? 1 : -1; // missing last
    const c = isNum(x) && isNum(y) ? x - y : String(x).localeCompare(String(y));
    return dir === "asc" ? c : -c;
  });
  const header = (col) =>
    h(`th.sortable${col === sort ? ".sorted" + (dir === "asc" ? ".asc" : "") : ""}${col.includes(".") ? "." + col.split(".")[0] : ""}`,
      { title: col.includes(".") ? col : null, dataset: { column: col }, onclick: () => go({ sort: col, dir: col === sort && dir === "asc" ? "desc" : "asc" }) },
      h(FIXED[col] ? "span.clip.wrap" : "span.clip", label(col)));
  const cell = (r, col) => {
    if (FIXED[col]) return h(FIXED[col][0].startsWith("LLM") || col === "duration" ? "td.num" : `td.col-${col}`, FIXED[col][2](r));
    const v = valueOf(col)(r);
    if (col.startsWith("metrics.")) {
      const k = col.slice(8);
      const tip = k in (r.metrics_min || {}) ? `min ${fmtNum(r.metrics_min[k])} · max ${fmtNum(r.metrics_max[k])}` : null;
      return h("td.num", { title: tip }, v === undefined ? "" : fmtNum(v));
    }
    if (col.startsWith("scores.")) return h("td.num", v === undefined || v === null ? "" : fmtValue(v));
    const text = v === undefined || v === null ? "" : fmtValue(v);
    return h("td", h("span.clip.value", { title: text }, text));
  };
  const controls = (r) => h("td.row-controls",
    h("input", { type: "checkbox", checked: selected.has(r.id), title: "select for comparison",
      onchange: (e) => { if (e.target.checked) selected.add(r.id); else selected.delete(r.id); go({}); } }),
    h(`button.pin${pinned.has(r.id) ? ".pinned" : ""}`, { type: "button", title: pinned.has(r.id) ? "unpin" : "pin to the top",
      "aria-pressed": String(pinned.has(r.id)), onclick: () => {
        const now = new Set(stored(PINNED_KEY, []));
        if (now.has(r.id)) now.delete(r.id); else now.add(r.id);
        store(PINNED_KEY, [...now]);
        rerender();
      } }, pinned.has(r.id) ? "★" : "☆"));
  const runRow = (r) => h(`tr.run${r.status === "failed" ? ".error" : ""}${pinned.has(r.id) ? ".pinned" : ""}`, { dataset: { runId: r.id } },
    controls(r), shown.map((c) => cell(r, c)));
  let body;
  const summarised = (c) => SUMMED.has(c) || /^(params|metrics|scores)\./.test(c);
  const labelSpan = Math.max(1, shown.findIndex(summarised) < 0 ? shown.length : shown.findIndex(summarised));
  if (groupBy) {
    const groups = new Map();
    for (const r of sorted) {
      const key = fmtGroupKey(groupValue(groupBy, r));
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
    body = [...groups].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true })).map(([key, members]) =>
      h("tbody.run-group", { dataset: { group: key } },
        h("tr.group-row", { dataset: { group: key, runs: members.length } },
          // the label spans the leading columns that have no summary (status, name, ...)
          h("td.group-label", { colspan: 1 + labelSpan },
            h("strong", `${groupBy} = ${key}`), h("span.muted", ` ${members.length} run${members.length === 1 ? "" : "s"}`)),
          shown.slice(labelSpan).map((c) => {
            const sum = groupSummary(c, members);
            if (!sum) return h("td");
            const text = c === "llm_cost" ? fmtCost(sum.value) : sum.kind === "sum" ? fmtInt(sum.value) : fmtNum(sum.value);
            return h("td.num.group-value", { dataset: { column: c, kind: sum.kind, value: sum.value },
              title: `${sum.kind} of ${sum.n} run${sum.n === 1 ? "" : "s"}` }, sum.kind === "mean" ? `⌀ ${text}` : `Σ ${text}`);
          })),
        members.map(runRow)));
  } else {
    body = [h("tbody", sorted.map(runRow))];
  }
  root.append(
    h("div.table-scroll", h("table#runs-table",
      h("thead", h("tr", h("th", ""), shown.map(header))),
      body,
    )),
  );

  // ---- charts ----
  const numericCols = [
    ...byCoverage(paramKeys.map((k) => `params.${k}`)),
    ...byCoverage([...metricKeys.map((k) => `metrics.${k}`), ...scoreKeys.map((k) => `scores.${k}`)]),
  ];
  const metricsByCoverage = byCoverage(metricKeys.map((k) => `metrics.${k}`)).map((c) => c.slice(8));
  // Charts over many runs draw a series per group (the grouping, else the experiment), named in the legend.
  const seriesKey = (r) => fmtGroupKey(groupValue(groupBy || "experiment", r));
  const chosen = sorted.filter((r) => selected.has(r.id));
  if (chosen.length) await curves(root, chosen, opts, go, current);
  if (!current()) return;
  if (runs.length >= 2 && metricsByCoverage.length) parallel(root, sorted, paramKeys, metricsByCoverage, p.get("pc"), go);
  if (runs.length >= 2 && numericCols.length >= 2) {
    const firstMetric = numericCols.find((c) => !c.startsWith("params."));
    scatter(root, sorted, numericCols, p.get("sx"), p.get("sy") || firstMetric, label, go, seriesKey);
  }
}

// The value a run is grouped by: experiment, status, a param or a tag.
function groupValue(group, r) {
  const [kind, ...rest] = group.split(".");
  const key = rest.join(".");
  if (kind === "params") return r.params[key];
  if (kind === "tags") return (r.tags || {})[key];
  return r[group];
}
const fmtGroupKey = (v) => (v === undefined || v === null || v === "" ? "(none)" : fmtValue(v));

// One chart per metric, a line per selected run.
async function curves(root, chosen, opts, go, current) {
  const histories = await Promise.all(chosen.map((r) => api(`/api/v1/runs/${encodeURIComponent(r.id)}/metrics`)));
  if (!current()) return;
  const byKey = new Map(); // metric -> [{name, data}]
  const label = runLabels(chosen);
  chosen.forEach((r, i) => {
    const t0 = Date.parse(r.start);
    const perKey = new Map();
    for (const pt of histories[i]) {
      if (pt.key.startsWith("system.")) continue;
      const x = opts.x === "time" ? (pt.time_unix_nano / 1e6 - t0) / 1000 : pt.step;
      if (!perKey.has(pt.key)) perKey.set(pt.key, []);
      perKey.get(pt.key).push([x, pt.value]);
    }
    for (const [key, data] of perKey) {
      if (opts.x === "time") data.sort((a, b) => a[0] - b[0]);
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push({ name: label.get(r.id), color: colorFor(r.id), data });
    }
  });
  const controls = h("div.toolbar#chart-options",
    h("label", "smoothing ", h("input#smoothing", { type: "range", min: 0, max: 0.99, step: 0.01, value: opts.smooth,
      onchange: (e) => go({ smooth: Number(e.target.value) || "" }) }), ` ${opts.smooth.toFixed(2)}`),
    h("label", h("input#log-scale", { type: "checkbox", checked: opts.log, onchange: (e) => go({ log: e.target.checked ? "1" : "" }) }), " log scale"),
    h("label", "x ", h("select#x-axis", { onchange: (e) => go({ x: e.target.value === "time" ? "time" : "" }) },
      h("option", { value: "step", selected: opts.x === "step" }, "step"),
      h("option", { value: "time", selected: opts.x === "time" }, "time since start (s)"))),
  );
  const box = h("div.charts#selected-charts");
  root.append(h("h2", `Metric curves of the ${chosen.length} selected run${chosen.length > 1 ? "s" : ""}`), controls, box);
  if (!byKey.size) box.append(h("p.muted", "The selected runs logged no metrics."));
  for (const [key, lines] of [...byKey].sort(([a], [b]) => a.localeCompare(b))) {
    const el = h("div.chart", { dataset: { metric: key } });
    box.append(el);
    // A log axis cannot show zero or negative values: those points are left out of it.
    const clean = (data) => (opts.log ? data.filter(([, y]) => y > 0) : data);
    const series = [];
    // A run's colour comes from its id: the same on every chart here and on Compare.
    for (const l of lines) {
      const color = l.color;
      if (opts.smooth) series.push({ type: "line", name: l.name, color, showSymbol: false, data: clean(l.data), lineStyle: { opacity: 0.25, width: 1 }, silent: true, tooltip: { show: false } });
      series.push({ type: "line", name: l.name, color, showSymbol: l.data.length < 60, data: clean(smooth(l.data, opts.smooth)) });
    }
    chart(el).setOption({
      title: { text: key, left: 8, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "–" : fmtNum(v)) },
      legend: { top: 24, type: "scroll" },
      grid: { left: 12, right: 20, top: 60, bottom: 36, containLabel: true },
      xAxis: { type: "value", name: opts.x === "time" ? "seconds since start" : "step", nameLocation: "middle", nameGap: 26 },
      yAxis: opts.log ? { type: "log" } : { type: "value", scale: true },
      dataZoom: [{ type: "inside" }],
      series,
    });
  }
}

// Parallel coordinates: an axis per param (numbers as values, anything else as categories) and
// the chosen metric last; each run is a line, coloured by that metric.
function parallel(root, runs, paramKeys, metricKeys, chosenMetric, go) {
  const metric = metricKeys.includes(chosenMetric) ? chosenMetric : metricKeys[0];
  const axes = paramKeys.map((k) => {
    const values = runs.map((r) => r.params[k]).filter((v) => v !== undefined);
    const numeric = values.every(isNum);
    return numeric
      ? { name: k, type: "value", scale: true }
      : { name: k, type: "category", data: [...new Set(values.map((v) => fmtValue(v)))].sort() };
  });
  axes.push({ name: metric, type: "value", scale: true, nameTextStyle: { fontWeight: "bold" } });
  const data = runs.filter((r) => isNum(r.metrics[metric])).map((r) => ({
    name: r.name,
    value: [...paramKeys.map((k, i) => (r.params[k] === undefined ? null : axes[i].type === "value" ? r.params[k] : fmtValue(r.params[k]))), r.metrics[metric]],
  }));
  const values = data.map((d) => d.value[d.value.length - 1]);
  const el = h("div.chart.tall#parallel-chart");
  root.append(
    h("h2", "Params against a metric"),
    h("div.toolbar", h("label", "metric ", h("select#parallel-metric", { onchange: (e) => go({ pc: e.target.value }) },
      metricKeys.map((k) => h("option", { value: k, selected: k === metric }, k))))),
    el,
  );
  chart(el).setOption({
    tooltip: { formatter: (d) => escapeHtml(`${d.name}: ${metric} ${fmtNum(d.value[d.value.length - 1])}`) },
    parallelAxis: axes.map((a, i) => ({ dim: i, ...a })),
    parallel: { left: 60, right: 160, top: 40, bottom: 30 },
    // The colour legend: what a line's colour says (the chosen metric, low to high).
    visualMap: { show: true, type: "continuous", dimension: axes.length - 1, min: Math.min(...values), max: Math.max(...values),
      calculable: false, right: 8, top: "middle", itemHeight: 140, precision: 4,
      text: [`${metric} high`, "low"], textStyle: { fontSize: 11 }, inRange: { color: ["#3b82f6", "#f59e0b", "#ef4444"] } },
    series: [{ type: "parallel", name: metric, lineStyle: { width: 2, opacity: 0.8 }, data }],
  });
}

// Scatter of any two numeric columns (params, last metric values, scores), a point per run; a
// series (and legend entry) per group of runs, the experiment unless the table is grouped.
function scatter(root, runs, cols, sx, sy, label, go, seriesKey) {
  const x = cols.includes(sx) ? sx : cols[0];
  const y = cols.includes(sy) ? sy : cols.find((c) => c !== x);
  const fx = valueOf(x), fy = valueOf(y);
  const groups = new Map();
  for (const r of runs.filter((r) => isNum(fx(r)) && isNum(fy(r)))) {
    const key = seriesKey(r);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push({ name: r.name, value: [fx(r), fy(r)] });
  }
  const select = (id, value, key) => h(`select#${id}`, { onchange: (e) => go({ [key]: e.target.value }) }, cols.map((c) => h("option", { value: c, selected: c === value }, c)));
  const el = h("div.chart#scatter-chart");
  root.append(h("h2", "Scatter"), h("div.toolbar", h("label", "x ", select("scatter-x", x, "sx")), h("label", "y ", select("scatter-y", y, "sy"))), el);
  chart(el).setOption({
    tooltip: { formatter: (d) => [d.name, `${label(x)} ${fmtNum(d.value[0])}`, `${label(y)} ${fmtNum(d.value[1])}`].map(escapeHtml).join("<br>") },
    legend: { top: 4, type: "scroll" },
    // Room for the axis names: y's above its axis (never clipped by the top edge), x's below.
    grid: { left: 16, right: 40, top: 56, bottom: 44, containLabel: true },
    xAxis: { type: "value", name: x, nameLocation: "middle", nameGap: 28, scale: true },
    yAxis: { type: "value", name: y, nameLocation: "end", nameGap: 12, nameTextStyle: { align: "left" }, scale: true },
    series: [...groups].map(([key, data]) => ({ type: "scatter", name: key, color: colorFor(key), symbolSize: 10, data })),
  });
}
