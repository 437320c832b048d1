import { h, api, fmtMs, fmtInt, fmtNum, fmtTime, fmtValue, chart, filterLink } from "../lib.js";

export async function renderRun(root, route, current) {
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
