import { h, ApiError, api, records, fmtMs, fmtCost, fmtInt, fmtTime, errorBox, emptyTraces, routeUrl, rangeSelect, scoreBadges, whereForm } from "../lib.js";

export async function renderTraces(root, route, current) {
  const p = route.params;
  const since = p.get("since") || "24h";
  const where = p.get("where") || "";
  const cursor = p.get("cursor") || "";
  const limit = p.get("limit") || ""; // page size, 50 unless the URL says otherwise
  const go = (changes) => {
    location.hash = routeUrl("traces", "", { since, where, limit, ...changes });
  };
  const [filter, whereBox] = whereForm(where, "request_model = 'gpt-4o' and duration_ms > 500", (w) => go({ where: w }));
  root.append(
    h("div.toolbar",
      h("h1", "Traces"),
      rangeSelect(since, (v) => go({ since: v, where: whereBox.value })),
      filter,
    ),
  );
  let page;
  try {
    page = await api("/api/v1/traces", { since, where, cursor, limit: limit || 50 });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    root.append(errorBox("traces-error", err.message));
    return;
  }
  if (!current()) return;
  const rows = records(page);
  if (!rows.length) {
    root.append(where || cursor ? h("p.empty", "No traces match in this time range.") : await emptyTraces());
    return;
  }
  const cols = ["", "start", "name", "input", "output", "model", "latency", "tokens", "cost", "scores", "session", "user", "run"];
  const body = rows.map((r) =>
    h(`tr${r.status === "error" ? ".error" : ""}`, { dataset: { traceId: r.trace_id } },
      h("td", h("span.status", { title: r.status })),
      h("td", { title: r.start_time }, fmtTime(r.start_time)),
      h("td", h("a", { href: routeUrl("trace", r.trace_id) }, r.root_span || r.trace_id)),
      h("td.preview", { title: r.input }, r.input),
      h("td.preview", { title: r.output }, r.output),
      h("td", (r.models || []).join(", ")),
      h("td.num", fmtMs(r.latency_ms)),
      h("td.num", { title: `${r.input_tokens} in / ${r.output_tokens} out` }, fmtInt(r.total_tokens)),
      h("td.num", fmtCost(r.cost_usd)),
      h("td", scoreBadges(r.scores)),
      h("td", r.session_id ? h("a.session-link", { href: routeUrl("sessions", r.session_id), title: "this session's transcript" }, r.session_id) : ""),
      h("td", r.user_id),
      h("td", r.run_id ? h("a", { href: routeUrl("run", r.run_id), title: r.run_id }, r.run_id.slice(0, 8)) : ""),
    ),
  );
  root.append(h("table#traces-table", h("thead", h("tr", cols.map((c) => h("th", c)))), h("tbody", body)));
  root.append(
    h("div.pager",
      cursor ? h("button", { type: "button", onclick: () => go({ where }) }, "« First page") : null,
      page.next_cursor ? h("button#next-page", { type: "button", onclick: () => go({ where, cursor: page.next_cursor }) }, "Next page »") : null,
    ),
  );
}
