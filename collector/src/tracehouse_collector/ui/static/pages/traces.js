import { h, ApiError, api, records, fmtMs, fmtCost, fmtInt, fmtTime, errorBox, emptyTraces, routeUrl, RANGES, rangeSelect, scoreBadges, whereForm } from "../lib.js";

// #/traces?since=&until=&where=&search=&sort=&limit=&cursor=: the traces list, sorted,
// counted, faceted and searched by the server (GET /api/v1/traces, /api/v1/traces/facets).
// since is a relative range (24h) or a time; until, when given, a time (links from a run page).

// Sortable headers -> the server's sort column.
const SORTABLE = { start: "start_time", latency: "latency_ms", tokens: "total_tokens", cost: "cost_usd" };
const FACET_LABELS = { model: "model", provider: "provider", service: "service", status: "status", session: "session", user: "user", run: "run" };

// A filter-language string literal.
const quote = (v) => `'${String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
// The filter with one more condition (a facet click).
const narrow = (where, field, value) => (where ? `(${where}) AND ` : "") + `${field} = ${quote(value)}`;

// Start times short enough for the column: the time of day today, else the date and minutes.
function fmtStart(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export async function renderTraces(root, route, current) {
  const p = route.params;
  const since = p.get("since") || "24h";
  const until = p.get("until") || "";
  const where = p.get("where") || "";
  const search = p.get("search") || "";
  const sort = p.get("sort") || "";
  const cursor = p.get("cursor") || "";
  const limit = p.get("limit") || ""; // page size, 50 unless the URL says otherwise
  const go = (changes) => {
    location.hash = routeUrl("traces", "", { since, until, where, search, sort, limit, ...changes });
  };
  const [filter, whereBox] = whereForm(where, "request_model = 'gpt-4o' and duration_ms > 500", (w) => go({ where: w }));
  const searchBox = h("input#trace-search", { type: "search", placeholder: "search prompts and responses", value: search, size: 24 });
  const searchForm = h("form", { style: "display:contents", onsubmit: (e) => { e.preventDefault(); go({ search: searchBox.value.trim(), where: whereBox.value.trim() }); } }, searchBox);
  const total = h("span.muted#traces-total");
  root.append(
    h("div.toolbar",
      h("h1", "Traces"),
      timeRange(since, until, (v) => go({ since: v, until: "", where: whereBox.value, cursor: "" })),
      searchForm,
      filter,
      total,
    ),
  );
  const query = { since, until, where, search };
  let page, facets;
  try {
    [page, facets] = await Promise.all([
      api("/api/v1/traces", { ...query, sort, cursor, limit: limit || 50, count: "true" }),
      api("/api/v1/traces/facets", { ...query, size: 6 }),
    ]);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("traces-error", err.message));
    return;
  }
  if (!current()) return;
  total.textContent = `${fmtInt(page.total) === "–" ? "0" : fmtInt(page.total)} trace${page.total === 1 ? "" : "s"}`;
  total.dataset.total = page.total;
  root.append(facetBar(facets, (field, value) => go({ where: narrow(where, field, value) })));
  const rows = records(page);
  if (!rows.length) {
    root.append(where || search || cursor ? h("p.empty", "No traces match in this time range.") : await emptyTraces());
    return;
  }
  const [sortColumn, sortDir] = sort ? sort.split(":") : ["start_time", "desc"];
  const header = (label) => {
    const column = SORTABLE[label];
    if (!column) return h("th", label);
    const active = column === sortColumn;
    const desc = !active || sortDir !== "asc";
    const next = active ? `${column}:${desc ? "asc" : "desc"}` : `${column}:desc`;
    return h(`th.sortable${active ? ".sorted" : ""}${active && !desc ? ".asc" : ""}`,
      { dataset: { sort: column }, title: `sort by ${label}`, onclick: () => go({ sort: next, cursor: "" }) }, label);
  };
  // Scores sort by one score's mean: the names this page shows.
  const scoreNames = [...new Set(rows.flatMap((r) => Object.keys(r.scores || {})))].sort();
  const scoreSort = h("select#score-sort", { title: "sort by a score", onchange: (e) => go({ sort: e.target.value, cursor: "" }) },
    h("option", { value: sort.startsWith("score.") ? "" : sort }, "scores"),
    scoreNames.flatMap((n) => [
      h("option", { value: `score.${n}:desc`, selected: sort === `score.${n}:desc` || sort === `score.${n}` }, `${n} ▾`),
      h("option", { value: `score.${n}:asc`, selected: sort === `score.${n}:asc` }, `${n} ▴`),
    ]));
  const heads = ["", "start", "name", "input", "output", "model", "latency", "tokens", "cost"].map(header);
  heads.push(h(`th${sort.startsWith("score.") ? ".sorted" : ""}`, scoreSort), h("th", "session · user · run"));
  const body = rows.map((r) =>
    h(`tr${r.status === "error" ? ".error" : ""}`, { dataset: { traceId: r.trace_id } },
      h("td", h("span.status", { title: r.status })),
      h("td", { title: r.start_time }, fmtStart(r.start_time)),
      h("td.name",
        h("a", { href: routeUrl("trace", r.trace_id), title: r.root_span || r.trace_id }, r.root_span || r.trace_id),
        r.error ? h("div.row-error", { title: r.error }, r.error) : null),
      h("td.preview", { title: r.input }, r.input),
      h("td.preview", { title: r.output }, r.output),
      h("td", { title: (r.models || []).join(", ") }, (r.models || []).join(", ")),
      h("td.num", fmtMs(r.latency_ms)),
      h("td.num", { title: `${r.input_tokens} in / ${r.output_tokens} out` }, fmtInt(r.total_tokens)),
      h("td.num", { title: r.cost_usd === null || r.cost_usd === undefined ? "" : `$${r.cost_usd}` }, fmtCost(r.cost_usd)),
      h("td.scores", scoreBadges(r.scores)),
      h("td.context",
        r.session_id ? h("div", h("a.session-link", { href: routeUrl("sessions", r.session_id), title: `session ${r.session_id}: its transcript` }, r.session_id)) : null,
        r.user_id ? h("div.user", { title: `user ${r.user_id}` }, r.user_id) : null,
        r.run_id ? h("div", h("a.run-link", { href: routeUrl("run", r.run_id), title: `run ${r.run_name || ""} ${r.run_id}`.replace("  ", " ") }, r.run_name || r.run_id.slice(0, 8))) : null),
    ),
  );
  // The cost column holds fmtCost's longest usual form ("$0.0001234") whole.
  const widths = ["22px", "120px", "13%", "", "", "9%", "76px", "72px", "104px", "10%", "12%"];
  root.append(h("table#traces-table",
    h("colgroup", widths.map((w) => h("col", w ? { style: `width:${w}` } : {}))),
    h("thead", h("tr", heads)), h("tbody", body)));
  root.append(
    h("div.pager",
      cursor ? h("button", { type: "button", onclick: () => go({ cursor: "" }) }, "« First page") : null,
      page.next_cursor ? h("button#next-page", { type: "button", onclick: () => go({ cursor: page.next_cursor }) }, "Next page »") : null,
    ),
  );
}

// The range picker; a fixed range from the URL (since a time, or an until) is its first,
// selected option, spelled out, so the page says which traces it lists.
function timeRange(since, until, onChange) {
  const select = rangeSelect(since, onChange);
  if (RANGES.includes(since) && !until) return select;
  const from = RANGES.includes(since) ? `last ${since}` : fmtTime(since);
  const label = until ? `${from} – ${fmtTime(until)}` : `since ${from}`;
  select.prepend(h("option#range-fixed", { value: since, selected: true, title: `since=${since}${until ? ` until=${until}` : ""}` }, label));
  return select;
}

// One line of facets: per field its most frequent values with how many traces hold them; a
// click narrows the filter to that value.
function facetBar(facets, onPick) {
  const groups = Object.entries(facets || {}).filter(([, values]) => values.length);
  return h("div#facets",
    groups.map(([field, values]) =>
      h("div.facet", { dataset: { field } },
        h("span.facet-name", FACET_LABELS[field] || field),
        values.map((v) => h("button.facet-value", { type: "button", dataset: { field, value: v.value }, title: `${field} = ${v.value}${v.label ? ` (${v.label})` : ""}: ${v.traces} traces`, onclick: () => onPick(field, v.value) },
          h("span.facet-label", v.label || v.value), h("span.facet-count", fmtInt(v.traces)))))));
}
