import { h, ApiError, api, chart, colorFor, runLabels, fmtCost, fmtNum, fmtValue, routeUrl } from "../lib.js";
import { evalsComparison } from "./evals.js";

// #/compare?ids=a,b,c&base=a&diff=1: runs side by side against a baseline run.

// Which way is better for a metric, guessed from its name; null when unknown (no colour).
function direction(key) {
  const k = key.toLowerCase();
  if (/loss|error|perplexity|latency|_ms$|cost|mse|mae|rmse|wer|cer/.test(k)) return -1;
  if (/acc|f1|precision|recall|auc|score|bleu|rouge|map|ndcg|r2|reward|calls$/.test(k)) return k.endsWith("calls") ? null : 1;
  return null;
}

function delta(value, base, key) {
  if (typeof value !== "number" || typeof base !== "number") return null;
  const d = value - base;
  const pct = base !== 0 ? (100 * d) / Math.abs(base) : null;
  const dir = direction(key);
  const cls = d === 0 || dir === null ? "" : d * dir > 0 ? ".better" : ".worse";
  const text = `${d > 0 ? "+" : ""}${fmtNum(d)}${pct === null ? "" : ` (${pct > 0 ? "+" : ""}${pct.toFixed(1)}%)`}`;
  return h(`span.delta${cls}`, text);
}

const same = (values) => values.every((v) => JSON.stringify(v) === JSON.stringify(values[0]));

const LLM_LABELS = {
  calls: "LLM calls",
  errors: "errors",
  accuracy: "accuracy (mean score)",
  latency_p50_ms: "latency p50 (ms)",
  latency_p95_ms: "latency p95 (ms)",
  total_tokens: "tokens",
  cost_usd: "cost (USD)",
};

export async function renderCompare(root, route, current) {
  const ids = (route.params.get("ids") || "").split(",").filter(Boolean);
  if (ids.length < 2) {
    root.append(
      h("h1", "Compare runs"),
      h("div.empty", h("p", "Pick at least two runs to compare: tick them on the ", h("a", { href: "#/runs" }, "Runs"),
        " page, then press ", h("strong", "Compare selected"), ".")),
    );
    return;
  }
  const diffOnly = route.params.get("diff") === "1";
  // One list read gives each run's params, last/min/max metric values and LLM usage.
  const listed = await api("/api/v1/runs", { where: `id IN (${ids.map((id) => `'${id.replace(/[^0-9a-f]/gi, "")}'`).join(", ")})` });
  if (!current()) return;
  const missing = ids.filter((id) => !listed.some((r) => r.id === id));
  if (missing.length) throw new ApiError(`no run ${missing.join(", ")}`);
  const runs = ids.map((id) => listed.find((r) => r.id === id));
  const base = runs.find((r) => r.id === route.params.get("base")) || runs[0];
  const others = runs.filter((r) => r !== base);
  const order = [base, ...others];
  const label = runLabels(runs); // names, with the id on hover
  const go = (changes) => (location.hash = routeUrl("compare", "", { ids: ids.join(","), base: base.id, diff: diffOnly ? "1" : "", ...changes }));
  root.append(
    h("div.toolbar",
      h("a", { href: "#/runs" }, "← Runs"),
      h("h1", `Compare ${runs.length} runs`),
      h("label", "baseline ",
        h("select#baseline", { onchange: (e) => go({ base: e.target.value }) },
          runs.map((r) => h("option", { value: r.id, selected: r === base, title: r.id }, label.get(r.id))))),
      h("label", h("input#diff-only", { type: "checkbox", checked: diffOnly, onchange: (e) => go({ diff: e.target.checked ? "1" : "" }) }),
        " only params that differ"),
    ),
  );
  const head = h("thead", h("tr", h("th", ""), order.map((r, i) =>
    h("th", h("a", { href: routeUrl("run", r.id), title: r.id }, label.get(r.id)), h("div.muted", i === 0 ? "baseline" : r.experiment)))));

  // Params side by side.
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))].sort();
  const paramRows = paramKeys
    .map((k) => [k, order.map((r) => (k in (r.params || {}) ? r.params[k] : undefined))])
    .filter(([, values]) => !diffOnly || !same(values))
    .map(([k, values]) => h(`tr${same(values) ? "" : ".differs"}`, { dataset: { param: k } }, h("td", k),
      values.map((v) => h("td", v === undefined ? "–" : fmtValue(v)))));
  root.append(h("h2", "Params"),
    paramRows.length
      ? h("table.compare#compare-params", head.cloneNode(true), h("tbody", paramRows))
      : h("p.muted#compare-params", diffOnly ? "All params are equal." : "No params logged."));

  // Metric summaries with deltas against the baseline.
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  const metricRows = metricKeys.map((k) => {
    const b = base.metrics[k];
    return h("tr", { dataset: { metric: k } }, h("td", k),
      order.map((r, i) => {
        if (!(k in r.metrics)) return h("td", "–");
        return h("td", { title: `min ${fmtNum(r.metrics_min[k])} · max ${fmtNum(r.metrics_max[k])}` },
          h("span.value", fmtNum(r.metrics[k])), i > 0 && k in base.metrics ? [" ", delta(r.metrics[k], b, k)] : null);
      }));
  });
  root.append(h("h2", "Metrics (last value; min/max on hover)"),
    metricRows.length ? h("table.compare#compare-metrics", head.cloneNode(true), h("tbody", metricRows)) : h("p.muted", "No metrics logged."));

  // LLM usage of each run.
  const llm = Object.fromEntries(runs.map((r) => [r.id, r.llm]));
  if (runs.some((r) => llm[r.id])) {
    const scoreNames = [...new Set(runs.flatMap((r) => Object.keys(llm[r.id]?.scores || {})))].sort();
    const row = (label, key, get) => h("tr", { dataset: { llm: key } }, h("td", label),
      order.map((r, i) => {
        const v = get(llm[r.id]);
        if (v === undefined || v === null) return h("td", "–");
        return h("td", h("span.value", key === "cost_usd" ? fmtCost(v) : fmtNum(v)),
          i > 0 ? [" ", delta(v, get(llm[base.id]), key)] : null);
      }));
    root.append(h("h2", "LLM calls inside the runs"),
      h("table.compare#compare-llm", head.cloneNode(true), h("tbody",
        Object.entries(LLM_LABELS).map(([key, label]) => row(label, key, (u) => u?.[key])),
        scoreNames.filter((n) => n !== "accuracy").map((n) => row(`score ${n}`, `score.${n}`, (u) => u?.scores?.[n])))));
  }

  // The runs' eval examples side by side: the regression view (pages/evals.js).
  const evals = await evalsComparison(order, label, route.params, go);
  if (!current()) return;
  if (evals) root.append(h("h2", "Eval examples"), evals);

  // Overlaid curves, one chart per metric.
  const histories = await Promise.all(order.map((r) => api(`/api/v1/runs/${encodeURIComponent(r.id)}/metrics`)));
  if (!current()) return;
  const box = h("div.charts#compare-charts");
  root.append(h("h2", "Curves"), box);
  for (const key of metricKeys) {
    const lines = order.map((r, i) => ({
      name: label.get(r.id),
      color: colorFor(r.id), // the run's colour on every chart and page
      data: histories[i].filter((p) => p.key === key).map((p) => [p.step, p.value]),
    })).filter((l) => l.data.length);
    if (!lines.some((l) => l.data.length > 1)) continue; // a single value is in the table already
    const el = h("div.chart", { dataset: { metric: key } });
    box.append(el);
    chart(el).setOption({
      title: { text: key, left: 8, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "–" : fmtNum(v)) },
      legend: { top: 24, type: "scroll" },
      grid: { left: 12, right: 20, top: 60, bottom: 36, containLabel: true },
      xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 26 },
      yAxis: { type: "value", scale: true, name: key },
      dataZoom: [{ type: "inside" }],
      // The baseline run drawn widest and underneath, so an equal curve on top stays visible.
      series: lines.map((l, i) => ({ type: "line", name: l.name, color: l.color, z: 2 + i, showSymbol: l.data.length < 60, data: l.data,
        lineStyle: { width: i === 0 ? 4 : 1.5, type: i === 0 ? "solid" : ["dashed", "solid", "dotted"][i % 3] } })),
    });
  }
  if (!box.children.length) box.append(h("p.muted", "No metric has more than one point to draw."));
}
