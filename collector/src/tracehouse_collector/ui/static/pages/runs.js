import { h, ApiError, api, fmtMs, fmtNum, fmtTime, fmtValue, errorBox, emptyRuns, routeUrl, chart } from "../lib.js";

const RUN_COLUMNS = {
  status: (r) => r.status,
  name: (r) => r.name,
  experiment: (r) => r.experiment,
  start: (r) => r.start || "",
  duration: (r) => r.duration_s ?? -1,
};

export async function renderRuns(root, route, current) {
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
