import { h, LEVEL_STYLES, api, records, fmtMs, fmtCost, fmtInt, fmtPercentile, noPrice, fmtScore, fmtTime, sinceSeconds, emptyTraces, routeUrl, chart, colorFor, onBuckets, percentileNote, rangeSelect, timeBuckets, unitFormat } from "../lib.js";

export async function renderOverview(root, route, current) {
  const since = route.params.get("since") || "24h";
  root.append(
    h("div.toolbar", h("h1", "Overview"), rangeSelect(since, (v) => (location.hash = routeUrl("overview", "", { since: v })))),
  );
  const secs = sinceSeconds(since);
  const [counts, lat, cost, byHour, byModel, byProvider, scores] = await Promise.all([
    api("/api/v1/sql", null, {
      sql:
        "SELECT uniqExact(TraceId) AS traces, uniqExactIf(TraceId, StatusCode = 'Error') AS error_traces " +
        `FROM otel_traces WHERE Timestamp >= now() - INTERVAL ${secs} SECOND`,
    }),
    api("/api/v1/query/latency", { since }),
    api("/api/v1/query/cost", { since }),
    api("/api/v1/query/latency", { since, by: "hour" }),
    api("/api/v1/query/cost", { since, by: "model" }),
    api("/api/v1/query/cost", { since, by: "provider" }),
    api("/api/v1/query/accuracy", { since }),
  ]);
  if (!current()) return;
  const c = records(counts)[0] || { traces: 0, error_traces: 0 };
  const l = records(lat)[0] || {};
  const k = records(cost)[0] || {};
  if (!Number(c.traces)) {
    root.append(await emptyTraces());
    return;
  }
  const kpi = (key, label, value, note, title) =>
    h("div.kpi", { dataset: { kpi: key }, title }, h("div.label", label), h("div.value", value), note || null);
  // Calls of models with no known price: their spend is missing from the cost, not zero.
  const unpriced = Number(k.unpriced_calls)
    ? h("div.muted.unpriced", { title: `${fmtInt(k.unpriced_tokens)} tokens not in the cost; list the models with: tracehouse query cost --unpriced` },
      `${fmtInt(k.unpriced_calls)} unpriced call${Number(k.unpriced_calls) === 1 ? "" : "s"}`)
    : null;
  root.append(
    h(
      "div.kpis#kpis",
      kpi("traces", "Traces", fmtInt(c.traces)),
      kpi("llm_calls", "LLM calls", fmtInt(l.count)),
      kpi("tokens", "Tokens", fmtInt(k.total_tokens)),
      kpi("cost", "Cost", k.cost_usd === null && unpriced ? "unpriced" : fmtCost(k.cost_usd), unpriced),
      kpi("p50", "LLM latency p50", fmtPercentile(l, "p50_ms"), null, `over the whole range; ${percentileNote(l)}`),
      kpi("p99", "LLM latency p99", fmtPercentile(l, "p99_ms"), null, `over the whole range (an hour's p99 can be higher); ${percentileNote(l)}`),
      kpi("error_rate", "Traces with errors", `${((100 * c.error_traces) / c.traces).toFixed(1)}%`),
      records(scores).filter((r) => r.mean !== null).map((r) => kpi(`score.${r.evaluation}`, `Mean ${r.evaluation}`, fmtScore(r.mean))),
    ),
    costBreakdown(records(byModel), "model", Number(k.cost_usd)),
    costBreakdown(records(byProvider), "provider", Number(k.cost_usd)),
  );
  const hours = records(byHour);
  const el = h("div.chart#latency-chart", { dataset: { unit: "ms" } });
  root.append(h("h2", "LLM call latency by hour (UTC)"), el);
  // Hours with no calls are gaps; p50, p90 and p99 differ in width, dash and symbol, so equal
  // ones stay visible.
  const buckets = timeBuckets("hour", secs);
  chart(el).setOption({
    tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "–" : fmtMs(v)) },
    legend: { data: ["p50", "p90", "p99"] },
    grid: { left: 12, right: 20, top: 40, bottom: 28, containLabel: true },
    xAxis: { type: "time", min: buckets[0], max: buckets[buckets.length - 1] + 3600e3 },
    yAxis: { type: "value", name: "ms", axisLabel: { formatter: unitFormat.ms } },
    series: ["p50", "p90", "p99"].map((p, i) => ({
      name: p,
      type: "line",
      showSymbol: true,
      ...LEVEL_STYLES[i],
      z: 3 + i,
      data: onBuckets(buckets, hours, "hour", (r) => r[`${p}_ms`]),
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

// A bar split by each model's (or provider's) share of the cost, with the figures beside it.
// Groups with calls of a model nobody prices get a "no price" badge and their call count: their
// spend is missing from the bar, not zero.
function costBreakdown(rows, dim, total) {
  const parts = rows.filter((r) => Number(r.cost_usd) > 0).sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd));
  const unpricedOnly = rows
    .filter((r) => !(Number(r.cost_usd) > 0) && Number(r.unpriced_calls) > 0)
    .sort((a, b) => Number(b.unpriced_calls) - Number(a.unpriced_calls));
  if (!(parts.length && total) && !unpricedOnly.length) return null;
  const share = (r) => (100 * Number(r.cost_usd)) / total;
  return h(`div.cost-breakdown#cost-by-${dim}`,
    h("span.label", `Cost by ${dim}`),
    parts.length && total
      ? h("div.cost-bar", parts.map((r) =>
          h("span", { style: `width:${share(r)}%;background:${colorFor(r[dim])}`, title: `${r[dim] || "(none)"}: ${fmtCost(r.cost_usd)}` })))
      : null,
    h("ul.cost-legend",
      parts.map((r) =>
        h("li", { dataset: { key: r[dim] } }, h("span.swatch", { style: `background:${colorFor(r[dim])}` }),
          `${r[dim] || "(none)"} ${fmtCost(r.cost_usd)} (${share(r).toFixed(0)}%)`, noPrice(r))),
      unpricedOnly.map((r) => h("li.unpriced", { dataset: { key: r[dim] } }, h("span.swatch.no-price"), `${r[dim] || "(none)"}`, noPrice(r)))),
  );
}
