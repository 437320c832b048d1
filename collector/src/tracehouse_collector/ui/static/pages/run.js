import { h, api, apiFetch, chart, colorFor, downloadLink, fmtCost, fmtInt, fmtMs, fmtNum, fmtTime, fmtValue, records, routeUrl, scoreBadges } from "../lib.js";

// #/run/<id>: info, params, one chart per metric (server-side reduced, full resolution on zoom),
// system metrics, artifacts with previews, linked models with the reproduce command, traces.

const CHART_POINTS = 1500; // per chart; the server keeps each bucket's first, last, min and max
const PREVIEW_BYTES = 65536;
const CSV_ROWS = 100;
const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;
const TEXT = /\.(txt|log|json|jsonl|ya?ml|md|py|toml|ini|cfg|sh)$/i;
const TABLE = /\.(csv|tsv)$/i;

export async function renderRun(root, route, current) {
  const run = await api(`/api/v1/runs/${encodeURIComponent(route.id)}`);
  if (!current()) return;
  const meta = run.metadata || {};
  root.append(
    h("div.toolbar", h("a", { href: "#/runs" }, "← Runs"), h("h1", `Run ${run.name}`),
      h(`span.status${run.status === "failed" ? ".error" : ""}`), h("span", run.status),
      h("a#run-evals-link", { href: routeUrl("evals", run.id) }, "Eval examples")),
  );
  const git = meta["git.commit"]
    ? `${meta["git.commit"].slice(0, 12)}${meta["git.branch"] ? ` (${meta["git.branch"]})` : ""}${meta["git.dirty"] === "true" ? ", uncommitted changes" : ""}`
    : "";
  const related = await runNames([run.parent_id, ...(run.children || [])].filter(Boolean));
  if (!current()) return;
  const runLink = (id) => h("a.run-link", { href: routeUrl("run", id), title: id }, related.get(id) || id.slice(0, 8));
  const facts = [
    ["id", run.id],
    ["experiment", h("a", { href: routeUrl("runs", "", { experiment: run.experiment }) }, run.experiment)],
    ["start", fmtTime(run.start)],
    ["duration", run.duration_s === null ? "running" : fmtMs(run.duration_s * 1000)],
    ["parent", run.parent_id ? runLink(run.parent_id) : ""],
    ["child runs", (run.children || []).length ? run.children.map((c) => [runLink(c), " "]) : ""],
    ["source", meta.source],
    ["command", meta.command ? h("code", meta.command) : ""],
    ["git", git],
    ["python", [meta["python.implementation"], meta["python.version"]].filter(Boolean).join(" ")],
    ["host", [meta["host.name"], meta.os].filter(Boolean).join(" · ")],
  ].filter(([, v]) => v && (!Array.isArray(v) || v.length));
  root.append(h("dl.facts#run-info", facts.map(([k, v]) => [h("dt", k), h("dd", v)])));
  const packages = Object.entries(run.packages || {}).sort(([a], [b]) => a.localeCompare(b));
  if (packages.length) {
    root.append(h("details#run-packages", h("summary", `${packages.length} installed packages`),
      h("table.compact", h("tbody", packages.map(([k, v]) => h("tr", h("td", k), h("td", v)))))));
  }
  const tags = Object.entries(run.tags || {});
  if (tags.length) root.append(h("p#run-tags", tags.map(([k, v]) => h("span.badge", `${k}=${v}`))));

  const params = Object.entries(run.params || {});
  root.append(h("h2", "Params"),
    params.length
      ? h("table.compact#run-params", h("tbody", params.map(([k, v]) => h("tr", h("td", k), h("td", fmtValue(v))))))
      : h("p.muted#run-params", "No params logged."));

  if (run.llm) root.append(h("h2", "LLM calls in this run"), llmFacts(run.llm));

  // A metric logged once is a value, not a curve: those go in a table, the rest get charts.
  const keys = Object.keys(run.metrics || {}).sort();
  const single = keys.filter((k) => run.metrics[k].count <= 1);
  const user = keys.filter((k) => !k.startsWith("system.") && !single.includes(k));
  const system = keys.filter((k) => k.startsWith("system.") && !single.includes(k));
  if (!keys.length) root.append(h("h2", "Metrics"), h("p.muted", "No metrics logged."));
  if (single.length) {
    root.append(h("h2", "Values"), h("table.compact#run-values", h("tbody", single.map((k) =>
      h("tr", { dataset: { metric: k } }, h("td", k), h("td.num", fmtNum(run.metrics[k].last)),
        h("td.muted", `step ${run.metrics[k].last_step}`))))));
  }
  const chartLoads = []; // the charts load side by side; the page is done when they are
  if (user.length) chartLoads.push(...metricCharts(root, run, "run-charts", "Metrics", user, current));
  if (system.length) chartLoads.push(...metricCharts(root, run, "system-charts", "System metrics", system, current));

  const models = (run.artifacts || []).filter((a) => a.kind === "model" || /\.luml$/i.test(a.name));
  if (models.length) {
    root.append(h("h2", "Models"), h("div#run-models", models.map((m) => {
      const command = `tracehouse reproduce ${m.digest.slice(0, 16)} --server ${location.origin}`;
      return h("div.model",
        h("div", h("strong", m.name), " ", h("span.muted", `${fmtInt(m.size)} B · sha256 ${m.digest.slice(0, 12)}`), " ",
          downloadLink(artifactUrl(m), m.name, "download")),
        h("div.muted", "Verify the file against this run and re-run its recorded evaluation:"),
        h("div.command", h("code.reproduce", command),
          h("button", { type: "button", title: "copy to the clipboard", onclick: (e) => copy(command, e.currentTarget) }, "copy")));
    })));
  }

  const arts = (run.artifacts || []).filter((a) => !models.includes(a));
  if (arts.length) {
    root.append(h("h2", "Artifacts"), h("div#run-artifacts", arts.map((a) => artifact(a))));
  }

  await runTraces(root, run, current);
  await Promise.all(chartLoads);
}

function llmFacts(u) {
  const facts = [
    ["calls", fmtInt(u.calls)],
    ["errors", String(u.errors)],
    ["latency p50 / p95", `${fmtMs(u.latency_p50_ms)} / ${fmtMs(u.latency_p95_ms)}`],
    ["tokens", `${fmtInt(u.total_tokens)} (${fmtInt(u.input_tokens)} in, ${fmtInt(u.output_tokens)} out)`],
    ["cost", fmtCost(u.cost_usd)],
    ...Object.entries(u.scores || {}).map(([k, v]) => [`score ${k}`, fmtNum(v)]),
  ];
  return h("dl.facts#run-llm", facts.map(([k, v]) => [h("dt", k), h("dd", v)]));
}

const artifactUrl = (a) => `/api/v1/artifacts/${encodeURIComponent(a.digest)}?name=${encodeURIComponent(a.name)}`;

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "copied";
  } catch {
    button.textContent = "select and copy";
  }
}

// ---- metric charts ----

// Starts one chart per key; returns their loads (each settles, showing its own error if any).
function metricCharts(root, run, id, title, keys, current) {
  const box = h(`div.charts#${id}`);
  root.append(h("h2", title), box);
  return keys.map((key) => {
    const el = h("div.chart", { dataset: { metric: key } });
    box.append(el);
    return metricChart(el, run, key, current).catch((err) => {
      if (current()) el.replaceChildren(h("p.error-box", `${key}: ${err.message}`));
    });
  });
}

const seriesOf = (run, key, extra) =>
  api(`/api/v1/runs/${encodeURIComponent(run.id)}/series`, { key, max_points: CHART_POINTS, ...extra });

async function metricChart(el, run, key, current) {
  const overview = await seriesOf(run, key);
  if (!current()) return;
  const s = run.metrics[key];
  const c = chart(el);
  const subtitle = (data) =>
    `last ${fmtNum(s.last)} · min ${fmtNum(s.min)} · max ${fmtNum(s.max)} · ${fmtInt(data.total)} points` +
    (data.downsampled ? ` (${data.points.length} drawn; zoom in for every point)` : "");
  c.setOption({
    title: { text: key, subtext: subtitle(overview), left: 8, textStyle: { fontSize: 13 } },
    tooltip: { trigger: "axis" },
    grid: { left: 12, right: 20, top: 56, bottom: 36, containLabel: true },
    xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 26, min: overview.min_step, max: overview.max_step },
    yAxis: { type: "value", scale: true },
    dataZoom: [{ type: "inside", filterMode: "none" }],
    series: [{ type: "line", name: key, color: colorFor(run.id), showSymbol: overview.points.length < 60, data: overview.points }],
  });
  el.dataset.points = overview.points.length;
  el.dataset.downsampled = overview.downsampled;
  if (!overview.downsampled) return; // every point is drawn already
  // On zoom, fetch the visible step range at full resolution (or reduced again, if still long)
  // and splice it into the overview, so the axis extent and the zoom window stay as they are.
  let timer = null;
  let asked = 0;
  c.on("datazoom", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const [lo, hi] = visibleRange(c, overview);
      const ticket = ++asked;
      const detail = lo <= overview.min_step && hi >= overview.max_step ? overview : await seriesOf(run, key, { min_step: lo, max_step: hi });
      if (!current() || c.isDisposed() || ticket !== asked) return;
      const data = [
        ...overview.points.filter(([x]) => x < detail.min_step),
        ...detail.points,
        ...overview.points.filter(([x]) => x > detail.max_step),
      ];
      c.setOption({ title: { subtext: subtitle(detail === overview ? overview : { ...detail, total: overview.total }) }, series: [{ data, showSymbol: detail.points.length < 60 }] });
      el.dataset.points = detail.points.length;
      el.dataset.downsampled = detail.downsampled;
      el.dataset.zoom = `${detail.min_step}-${detail.max_step}`;
    }, 250);
  });
}

function visibleRange(c, overview) {
  const z = c.getOption().dataZoom[0];
  const span = overview.max_step - overview.min_step;
  const lo = z.startValue ?? overview.min_step + (span * (z.start ?? 0)) / 100;
  const hi = z.endValue ?? overview.min_step + (span * (z.end ?? 100)) / 100;
  return [Math.floor(lo), Math.ceil(hi)];
}

// ---- artifacts ----

function artifact(a) {
  const box = h("div.artifact", { dataset: { name: a.name } },
    h("div", h("strong", a.name), " ", h("span.muted", `${a.kind} · ${fmtInt(a.size)} B`), " ",
      a.digest ? downloadLink(artifactUrl(a), a.name, "download") : null));
  if (!a.digest) return box;
  const preview = h("div.preview");
  box.append(preview);
  if (IMAGE.test(a.name) || TEXT.test(a.name) || TABLE.test(a.name)) {
    loadPreview(a, preview).catch((err) => preview.replaceChildren(h("p.muted", `No preview: ${err.message}`)));
  }
  return box;
}

async function loadPreview(a, el) {
  if (IMAGE.test(a.name)) {
    // Through a blob URL in an <img>: the API key travels in the header, and an SVG's scripts never run.
    const resp = await apiFetch(artifactUrl(a));
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const img = h("img", { alt: a.name, src: URL.createObjectURL(await resp.blob()) });
    el.replaceChildren(img);
    return;
  }
  const resp = await apiFetch(artifactUrl(a), { headers: { Range: `bytes=0-${PREVIEW_BYTES - 1}` } });
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  const text = await resp.text();
  const cut = a.size > PREVIEW_BYTES;
  if (TABLE.test(a.name)) {
    const sep = /\.tsv$/i.test(a.name) ? "\t" : ",";
    const lines = text.split(/\r?\n/).filter(Boolean);
    if (cut) lines.pop(); // the last line may be cut in the middle
    const [head, ...rows] = lines.map((l) => parseCsvLine(l, sep));
    el.replaceChildren(
      ...[h("table.compact.csv-preview", h("thead", h("tr", (head || []).map((c) => h("th", c)))),
        h("tbody", rows.slice(0, CSV_ROWS).map((r) => h("tr", r.map((c) => h("td", c)))))),
      rows.length > CSV_ROWS || cut ? h("p.muted", `First ${Math.min(rows.length, CSV_ROWS)} rows.`) : null].filter(Boolean),
    );
    return;
  }
  el.replaceChildren(h("pre.text-preview", text));
  if (cut) el.append(h("p.muted", `First ${fmtInt(PREVIEW_BYTES)} bytes of ${fmtInt(a.size)}.`));
}

// One CSV line into fields: quotes group separators, "" is a literal quote.
function parseCsvLine(line, sep) {
  const out = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) out.push(field), (field = "");
    else field += ch;
  }
  out.push(field);
  return out;
}

// ---- related runs ----

const NAMED_RUNS = 50; // a parent with more children shows the rest by id
// id -> name of the given runs (those that cannot be read keep their id).
async function runNames(ids) {
  const named = await Promise.all(ids.slice(0, NAMED_RUNS).map((id) =>
    api(`/api/v1/runs/${encodeURIComponent(id)}`).then((r) => [id, r.name], () => [id, null])));
  return new Map(named.filter(([, name]) => name));
}

// ---- the run's traces ----

const TRACE_MARGIN_MS = 3600e3; // spans of a run's first and last step may be stamped a little outside it

// The run's own time range, widened by the margin: [since, until) as ISO times (until open
// while the run is still going).
function runRange(run) {
  const start = Date.parse(run.start);
  const end = run.end ? Date.parse(run.end) : NaN;
  return {
    since: new Date(start - TRACE_MARGIN_MS).toISOString(),
    until: Number.isFinite(end) ? new Date(end + TRACE_MARGIN_MS).toISOString() : "",
  };
}

async function runTraces(root, run, current) {
  const range = runRange(run);
  const where = `run = '${run.id}'`;
  const page = await api("/api/v1/traces", { ...range, where, limit: 20 });
  if (!current()) return;
  const rows = records(page);
  root.append(h("h2", "Traces of this run ", h("a#run-traces", { href: routeUrl("traces", "", { ...range, where }) }, "(all, in the traces view)")));
  if (!rows.length) {
    root.append(h("p.muted#run-trace-list", "No traces carry this run's id. Spans made inside ", h("code", "tracehouse.run(...)"), " are linked to it."));
    return;
  }
  const cols = ["", "name", "input", "output", "latency", "tokens", "cost", "scores", "start"];
  root.append(h("table#run-trace-list",
    h("thead", h("tr", cols.map((c) => h("th", c)))),
    h("tbody", rows.map((r) =>
      h(`tr${r.status === "error" ? ".error" : ""}`, { dataset: { traceId: r.trace_id } },
        h("td", h("span.status", { title: r.status })),
        h("td", h("a", { href: routeUrl("trace", r.trace_id) }, r.root_span || r.trace_id)),
        h("td.preview", { title: r.input }, r.input),
        h("td.preview", { title: r.output }, r.output),
        h("td.num", fmtMs(r.latency_ms)),
        h("td.num", fmtInt(r.total_tokens)),
        h("td.num", fmtCost(r.cost_usd)),
        h("td.scores", scoreBadges(r.scores)),
        h("td", { title: r.start_time }, fmtTime(r.start_time)))))));
  // append() would print a null as the text "null": add the note only when there is one
  if (page.next_cursor) root.append(h("p.muted#run-traces-more", "Showing the latest 20."));
}
