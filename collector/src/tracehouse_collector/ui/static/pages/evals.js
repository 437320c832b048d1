import { h, api, append, ApiError, fmtNum, routeUrl } from "../lib.js";

// #/evals/<run id>[?dataset=D&limit=N]: a run's eval examples, N (100) a page (inputs, outputs, references, scores,
// annotations, the traces that produced each). Also: the regression section of the compare page
// (evalsComparison) and the annotations panel of the trace page (annotationsPanel).

const CHANGES = ["worse", "better", "same", "missing"];

const json = (v) => (v === null || v === undefined ? "–" : typeof v === "string" ? v : JSON.stringify(v));

function traceLinks(ids) {
  return (ids || []).map((t) => [h("a.trace-link", { href: routeUrl("trace", t), title: t }, t.slice(0, 8)), " "]);
}

function annotationItems(list) {
  return (list || []).map((a) =>
    h("li.annotation", { dataset: { annotationId: a.id, kind: a.kind } },
      h("span.badge", a.kind), " ", h("strong", a.name), " = ", h("span.annotation-value", json(a.value)),
      a.user ? h("span.muted", ` by ${a.user}`) : null,
      a.rationale ? h("span.muted", ` — ${a.rationale}`) : null));
}

const EVALS_PAGE = 100;

// One page of the run's examples (GET …/evals?limit&cursor): {examples, next_cursor}.
const evalsPage = (runId, dataset, limit, cursor) =>
  api(`/api/v1/runs/${encodeURIComponent(runId)}/evals`, { dataset, limit, cursor });

export async function renderEvals(root, route, current) {
  const runId = route.id;
  const dataset = route.params.get("dataset") || "";
  const limit = Number(route.params.get("limit")) || EVALS_PAGE; // #/evals/<id>?limit=N: the page size
  const [run, first] = await Promise.all([api(`/api/v1/runs/${encodeURIComponent(runId)}`), evalsPage(runId, dataset, limit)]);
  if (!current()) return;
  const examples = [...first.examples];
  const count = h("span.muted#evals-count");
  root.append(h("div.toolbar",
    h("a", { href: routeUrl("run", run.id) }, `← Run ${run.name}`),
    h("h1", `Eval examples of ${run.name}`), count));
  if (!examples.length) {
    count.textContent = "0 examples";
    root.append(h("div.empty", h("p", "This run has no eval examples. Record them with ",
      h("code", "with run.eval_example(dataset, example_id, inputs=...) as ex: ... ex.record(outputs=..., scores=...)"), ".")));
    return;
  }
  const body = h("div#evals-body");
  root.append(body);
  // Redrawn as pages come: a later page may bring score names the earlier ones lacked.
  const draw = (nextCursor) => {
    count.textContent = `${examples.length} examples${nextCursor ? " (more to load)" : ""}`;
    body.replaceChildren(examplesTable(examples), nextCursor ? h("button#evals-more", { type: "button", onclick: async (ev) => {
      ev.target.disabled = true;
      const page = await evalsPage(runId, dataset, limit, nextCursor);
      if (!current()) return;
      examples.push(...page.examples);
      draw(page.next_cursor);
    } }, `Load ${limit} more`) : null);
  };
  draw(first.next_cursor);
}

function examplesTable(examples) {
  const names = [...new Set(examples.flatMap((e) => Object.keys(e.scores)))].sort();
  // Mean of each score over the examples shown.
  const means = Object.fromEntries(names.map((n) => {
    const vs = examples.map((e) => e.scores[n]).filter((v) => typeof v === "number");
    return [n, vs.reduce((a, b) => a + b, 0) / vs.length];
  }));
  const head = h("thead", h("tr", ["dataset", "example", "inputs", "outputs", "references"].map((c) => h("th", c)),
    names.map((n) => h("th", { dataset: { score: n } }, n)), h("th", "annotations"), h("th", "traces")));
  const rows = examples.map((e) => h("tr", { dataset: { example: e.example_id, dataset: e.dataset } },
    h("td", e.dataset), h("td", e.example_id),
    h("td.json", json(e.inputs)), h("td.json", json(e.outputs)), h("td.json", json(e.references)),
    names.map((n) => h("td.num", { dataset: { score: n } }, n in e.scores ? fmtNum(e.scores[n]) : "–")),
    h("td", h("ul.annotations", annotationItems(e.annotations))),
    h("td", traceLinks(e.trace_ids))));
  return h("div",
    h("p#evals-means", names.map((n) => h("span.badge.score", { dataset: { score: n } }, `mean ${n} ${fmtNum(means[n])}`))),
    h("table.evals#evals-table", head, h("tbody", rows)));
}

// ---------- the regression view, on the compare page ----------

function deltaCell(d) {
  if (d === undefined || d === null) return h("td.num", "–");
  const cls = d > 0 ? ".better" : d < 0 ? ".worse" : "";
  return h("td.num", h(`span.delta${cls}`, `${d > 0 ? "+" : ""}${fmtNum(d)}`));
}

// The runs' examples side by side (GET /api/v1/evals/compare), baseline first, with a filter for
// the examples that got worse or better.
export async function evalsComparison(order, label, params, go) {
  const change = params.get("change") || "";
  const score = params.get("score") || "";
  let result;
  try {
    result = await api("/api/v1/evals/compare", { ids: order.map((r) => r.id).join(","), change, score });
  } catch (err) {
    if (err instanceof ApiError) return h("p.error-box#compare-evals", err.message);
    throw err;
  }
  const section = h("div#compare-evals");
  if (!result.examples.length && !change) return null; // no evals in these runs: nothing to show
  const later = result.summary.slice(1);
  // Runs by name (the API labels them by id), the id on hover.
  const labels = result.runs.map((id, i) => label.get(id) || result.labels[i]);
  const th = (text, i) => h("th", { title: result.runs[i] }, text);
  section.append(h("div.toolbar",
    h("label", "examples ", h("select#evals-change", { onchange: (e) => go({ change: e.target.value, score }) },
      h("option", { value: "" }, "all"),
      CHANGES.map((c) => h("option", { value: c, selected: c === change }, `that got ${c === "same" ? "no change" : c}`)))),
    h("label", "judged by ", h("select#evals-score", { onchange: (e) => go({ score: e.target.value, change }) },
      h("option", { value: "" }, "every score"),
      result.scores.map((n) => h("option", { value: n, selected: n === score }, n)))),
    h("span.muted#evals-summary", later.map((s) =>
      `${label.get(s.run_id) || s.label} vs ${labels[0]}: ${CHANGES.map((c) => `${s.changes[c]} ${c}`).join(", ")}`).join(" · "))));
  const names = score ? [score] : result.scores;
  const head = h("thead", h("tr", h("th", "example"), h("th", "inputs"),
    labels.map((lab, i) => th(`output ${lab}${i === 0 ? " (baseline)" : ""}`, i)),
    names.map((n) => [labels.map((lab, i) => th(`${n} ${lab}`, i)), labels.slice(1).map((lab, i) => th(`Δ ${n} ${lab}`, i + 1))]),
    labels.slice(1).map((lab, i) => th(`change ${lab}`, i + 1))));
  const rows = result.examples.map((e) => h("tr", { dataset: { example: e.example_id, dataset: e.dataset, changes: e.changes.join(",") } },
    h("td", e.example_id), h("td.json", json(e.inputs)),
    e.runs.map((r) => h("td.json", r ? [json(r.outputs), " ", traceLinks(r.trace_ids)] : "–")),
    names.map((n) => [
      e.runs.map((r) => h("td.num", r && n in r.scores ? fmtNum(r.scores[n]) : "–")),
      e.deltas.map((d) => deltaCell(d[n])),
    ]),
    e.changes.map((c) => h(`td.change.${c}`, c))));
  section.append(rows.length
    ? h("table.compare#compare-evals-table", head, h("tbody", rows))
    : h("p.muted", `No example got ${change}.`));
  return section;
}

// ---------- annotations on the trace page ----------

// The trace's annotations (on it and its spans) and a form to add one to the trace or the
// selected span (POST /api/v1/annotations: a key with the `annotate` scope).
export function annotationsPanel(traceId, selectedSpan) {
  const box = h("div#annotations");
  const list = h("ul.annotations#annotation-list");
  const status = h("span.muted#annotation-status");
  const load = async () => {
    const found = await api("/api/v1/annotations", { trace_id: traceId });
    list.replaceChildren(...annotationItems(found).map((li, i) =>
      append(li, [found[i].span_id ? h("span.muted", ` (span ${found[i].span_id.slice(0, 8)})`) : h("span.muted", " (trace)")])));
    if (!found.length) list.append(h("li.muted", "No annotations yet."));
  };
  const name = h("input#annotation-name", { placeholder: "name, e.g. correctness", required: true, size: 18 });
  const value = h("input#annotation-value", { placeholder: "value: 1, true, text", required: true, size: 14 });
  const kind = h("select#annotation-kind", h("option", "feedback"), h("option", "expectation"));
  const user = h("input#annotation-user", { placeholder: "your name", size: 10 });
  const rationale = h("input#annotation-rationale", { placeholder: "why (optional)", size: 24 });
  const onSpan = h("input#annotation-on-span", { type: "checkbox" });
  const form = h("form.toolbar#annotation-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const raw = value.value.trim();
      const typed = /^(true|false)$/i.test(raw) ? raw.toLowerCase() === "true" : raw !== "" && !isNaN(Number(raw)) ? Number(raw) : raw;
      const span = onSpan.checked ? selectedSpan() : null;
      try {
        await api("/api/v1/annotations", null, {
          trace_id: traceId, ...(span ? { span_id: span } : {}), name: name.value.trim(), value: typed,
          kind: kind.value, user: user.value.trim() || undefined, rationale: rationale.value.trim() || undefined, source: "ui",
        });
        status.textContent = "Saved.";
        form.reset();
        await load();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        status.textContent = err.message;
      }
    },
  }, name, value, kind, user, rationale, h("label", onSpan, " on the selected span"), h("button", { type: "submit" }, "Annotate"), status);
  box.append(h("h2", "Annotations"), list, form);
  load().catch((err) => { status.textContent = err.message; });
  return box;
}
