import { h, ApiError, LEVEL_STYLES, api, chart, colorFor, emptyTraces, errorBox, escapeHtml, fmtCost, fmtInt, fmtMs, fmtNum, fmtPercentile, noPrice, onBuckets, percentileNote, rangeSelect, records, routeUrl, sinceSeconds, timeBuckets, unitFormat, whereForm } from "../lib.js";

// #/metrics?since=24h&service=&where=: LLM usage over time from the aggregates API (the same
// numbers as `tracehouse query`), and an across-runs table.

// The time bucket for a range: minutes up to 6 h, hours up to 7 days, days beyond.
function bucketOf(since) {
  const s = sinceSeconds(since);
  return s <= 6 * 3600 ? "minute" : s <= 7 * 86400 ? "hour" : "day";
}

export async function renderMetrics(root, route, current) {
  const p = route.params;
  const since = p.get("since") || "24h";
  const service = p.get("service") || "";
  const where = p.get("where") || "";
  const go = (changes) => (location.hash = routeUrl("metrics", "", { since, service, where, ...changes }));
  root.append(
    h("div.toolbar",
      h("h1", "Metrics"),
      rangeSelect(since, (v) => go({ since: v })),
      h("input#service", { type: "search", placeholder: "service", value: service, size: 14, onchange: (e) => go({ service: e.target.value.trim() }) }),
      whereForm(where, "provider = 'openai'", (w) => go({ where: w }))[0],
    ),
  );
  const bucket = bucketOf(since);
  const q = (kind, by) => api(`/api/v1/query/${kind}`, { since, service, where, by: by.join(",") }).then(records);
  let data;
  try {
    data = await Promise.all([
      q("latency", [bucket]),
      q("cost", [bucket, "model"]),
      q("cost", ["model"]),
      q("accuracy", [bucket]),
      q("latency", ["run"]),
      q("cost", ["run"]),
      q("accuracy", ["run"]),
    ]);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("metrics-error", err.message));
    return;
  }
  if (!current()) return;
  const [latency, costByTime, costByModel, scoresByTime, latencyByRun, costByRun, scoresByRun] = data;
  if (!latency.length && !costByModel.length) {
    root.append(where || service ? h("p.empty", "No LLM calls match in this time range.") : await emptyTraces());
    return;
  }
  const secs = sinceSeconds(since);
  // Every series is laid on the same buckets of the range: stacks add up per bucket, and a
  // bucket with no calls is a gap in a line (never bridged) and no bar.
  const buckets = timeBuckets(bucket, secs);
  const xAxis = { type: "time", min: buckets[0], max: buckets[buckets.length - 1] + 1 };
  const grid = { left: 12, right: 20, top: 56, bottom: 28, containLabel: true };
  const box = h("div.charts#metrics-charts");
  root.append(h("p.muted", `LLM calls by ${bucket} (UTC); percentiles over the calls of each ${bucket}.`));
  // Calls of models nobody prices: their spend is missing from every cost here, not zero.
  const unpricedCalls = costByModel.reduce((n, r) => n + Number(r.unpriced_calls || 0), 0);
  if (unpricedCalls) {
    const unpricedTokens = costByModel.reduce((n, r) => n + Number(r.unpriced_tokens || 0), 0);
    root.append(h("p.unpriced-note#unpriced-note",
      h("span.badge.no-price", "no price"), " ",
      h("span.unpriced-calls", `${fmtInt(unpricedCalls)} unpriced call${unpricedCalls === 1 ? "" : "s"}`),
      ` (${fmtInt(unpricedTokens)} tokens) of models with no known price: their cost is missing from these numbers, not zero. `,
      "List them with ", h("code", "tracehouse query cost --unpriced"), " and add them to a price file."));
  }
  root.append(box);
  const panel = (id, title, unit) => {
    const el = h(`div.chart#${id}`, { dataset: { unit } });
    box.append(el);
    const c = chart(el);
    c.setOption({
      title: { text: title, left: 8, textStyle: { fontSize: 13 } }, grid,
      tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "–" : unitFormat[unit](v)) },
    });
    return c;
  };
  const yAxis = (unit, extra) => ({ type: "value", name: unit === "usd" ? "USD" : unit, axisLabel: { formatter: (v) => unitFormat[unit](v) }, ...extra });
  const onTime = (rows, value) => onBuckets(buckets, rows, bucket, value);

  panel("requests-chart", "Requests and errors", "count").setOption({
    legend: { top: 24, data: ["requests", "errors"] },
    xAxis, yAxis: yAxis("count", { minInterval: 1, name: "calls" }),
    series: [
      { name: "requests", type: "bar", barMaxWidth: 16, color: "#5470c6", data: onTime(latency, (r) => r.count) },
      { name: "errors", type: "bar", barMaxWidth: 16, barGap: "-100%", color: "#e5484d", data: onTime(latency, (r) => Math.round(r.count * r.error_rate)) },
    ],
  });
  // p50 <= p90 <= p99: equal ones overlap, so each has its own width, dash and symbol.
  panel("latency-chart", "Latency", "ms").setOption({
    legend: { top: 24, data: ["p50", "p90", "p99"] },
    xAxis, yAxis: yAxis("ms"),
    series: ["p50", "p90", "p99"].map((lvl, i) => ({ name: lvl, type: "line", showSymbol: true, ...LEVEL_STYLES[i], z: 3 + i, data: onTime(latency, (r) => r[`${lvl}_ms`]) })),
  });
  const models = [...new Set(costByTime.map((r) => r.model))].sort();
  // A null cost (nothing priced) stays a gap, and a model never priced gets no cost series.
  const priced = models.filter((m) => costByTime.some((r) => r.model === m && r.cost_usd !== null));
  const stacked = (field, names = models) => names.map((m) => ({
    name: m, type: "bar", stack: field, barMaxWidth: 16, color: colorFor(m),
    data: onTime(costByTime.filter((r) => r.model === m), (r) => r[field]),
  }));
  panel("tokens-chart", "Tokens by model", "tokens").setOption({ legend: { top: 24, type: "scroll" }, xAxis, yAxis: yAxis("tokens"), series: stacked("total_tokens") });
  panel("cost-chart", "Cost by model", "usd").setOption({ legend: { top: 24, type: "scroll" }, xAxis, yAxis: yAxis("usd"), series: stacked("cost_usd", priced) });
  const top = costByModel.filter((r) => r.cost_usd !== null).sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd)).slice(0, 10).reverse();
  panel("top-models-chart", "Top models by cost", "usd").setOption({
    tooltip: { trigger: "item", formatter: (d) => escapeHtml(`${d.name}: ${fmtCost(top[d.dataIndex].cost_usd)}`) },
    grid: { left: 12, right: 30, top: 40, bottom: 24, containLabel: true },
    xAxis: yAxis("usd"),
    yAxis: { type: "category", data: top.map((r) => r.model || "(none)"), axisLabel: { width: 220, overflow: "truncate" } },
    series: [{ type: "bar", data: top.map((r) => ({ value: Number(r.cost_usd), itemStyle: { color: colorFor(r.model) } })) }],
  });
  const names = [...new Set(scoresByTime.filter((r) => r.mean !== null).map((r) => r.evaluation))].sort();
  const scoreChart = panel("scores-chart", "Mean scores", "score");
  if (names.length) {
    scoreChart.setOption({
      tooltip: { valueFormatter: (v) => (v === null || v === undefined ? "–" : fmtNum(v)) },
      legend: { top: 24, type: "scroll" }, xAxis, yAxis: { type: "value", scale: true, name: "mean" },
      series: names.map((n) => ({ name: n, type: "line", showSymbol: true, color: colorFor(n),
        data: onTime(scoresByTime.filter((r) => r.evaluation === n && r.mean !== null), (r) => r.mean) })),
    });
  } else {
    scoreChart.setOption({ graphic: { type: "text", left: "center", top: "middle", style: { text: "No numeric scores in this range", fill: "#888" } } });
  }

  // Cost by model as figures: an unpriced model is marked, its cost "unpriced" rather than $0.
  root.append(h("h2", "Cost by model"), h("table#cost-by-model-table",
    h("thead", h("tr", ["model", "LLM calls", "tokens", "cost", "unpriced calls", "unpriced tokens"].map((c) => h("th", c)))),
    h("tbody", [...costByModel].sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd) || Number(b.unpriced_calls) - Number(a.unpriced_calls)).map((r) =>
      h(`tr${Number(r.unpriced_calls) ? ".unpriced" : ""}`, { dataset: { model: r.model } },
        h("td", h("span.swatch", { style: `background:${colorFor(r.model)}` }), r.model || "(none)", Number(r.unpriced_calls) ? h("span.badge.no-price", "no price") : null),
        h("td.num", fmtInt(r.count)),
        h("td.num", fmtInt(r.total_tokens)),
        h("td.num.cost", r.cost_usd === null ? "unpriced" : fmtCost(r.cost_usd)),
        h("td.num.unpriced-calls", fmtInt(r.unpriced_calls)),
        h("td.num", fmtInt(r.unpriced_tokens)))))));

  // Across runs: the LLM calls made inside each run.
  const runs = new Map();
  for (const r of latencyByRun.filter((x) => x.run)) runs.set(r.run, { run: r.run, calls: r.count, mean_ms: r.mean_ms, latency: r });
  for (const r of costByRun.filter((x) => runs.has(x.run))) Object.assign(runs.get(r.run), { tokens: r.total_tokens, cost: r.cost_usd, unpriced: r });
  for (const r of scoresByRun.filter((x) => runs.has(x.run) && x.evaluation === "accuracy")) runs.get(r.run).accuracy = r.mean;
  root.append(h("h2", "Across runs"));
  if (!runs.size) {
    root.append(h("p.muted#runs-usage", "No LLM calls inside runs in this range: calls made within ", h("code", "tracehouse.run(...)"), " are counted per run."));
    return;
  }
  const known = await api("/api/v1/runs", { where: `id IN (${[...runs.keys()].map((id) => `'${id}'`).join(", ")})` }).catch(() => []);
  if (!current()) return;
  const runName = Object.fromEntries(known.map((r) => [r.id, r.name]));
  root.append(h("table#runs-usage",
    h("thead", h("tr", ["run", "accuracy", "LLM calls", "avg latency", "p50 latency", "tokens", "cost"].map((c) => h("th", c)))),
    h("tbody", [...runs.values()].sort((a, b) => b.calls - a.calls).map((r) =>
      h("tr", { dataset: { runId: r.run } },
        h("td", h("span.swatch", { style: `background:${colorFor(r.run)}` }), h("a", { href: routeUrl("run", r.run) }, runName[r.run] || r.run.slice(0, 8))),
        h("td.num", r.accuracy === undefined || r.accuracy === null ? "–" : fmtNum(r.accuracy)),
        h("td.num", fmtInt(r.calls)),
        h("td.num", fmtMs(r.mean_ms)),
        h("td.num", { title: percentileNote(r.latency) }, fmtPercentile(r.latency, "p50_ms")),
        h("td.num", fmtInt(r.tokens)),
        h("td.num", r.cost === null ? "unpriced" : fmtCost(r.cost), r.unpriced ? noPrice(r.unpriced) : null))))));
}
