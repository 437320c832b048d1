// Tracehouse web UI: a hash-routed single page over the REST API (/api/v1/...).
// Each page lives in pages/<name>.js and exports render(root, route, current).

import { ApiError, AuthError, apiKey, charts, disposeCharts, errorBox, h, parseRoute } from "./lib.js";
import { renderOverview } from "./pages/overview.js";
import { renderTraces } from "./pages/traces.js";
import { renderTrace } from "./pages/trace.js";
import { renderRuns } from "./pages/runs.js";
import { renderRun } from "./pages/run.js";
import { renderCompare } from "./pages/compare.js";
import { renderEvals } from "./pages/evals.js";
import { renderSessions } from "./pages/sessions.js";
import { renderMetrics } from "./pages/metrics.js";
import { renderSql } from "./pages/sql.js";

const view = document.getElementById("view");
const THEME_KEY = "tracehouse.theme";
let renderToken = 0; // a page render that finds a newer token has been superseded

const PAGES = {
  overview: renderOverview,
  traces: renderTraces,
  trace: renderTrace,
  sessions: renderSessions, // #/sessions and #/sessions/<id> (the transcript)
  runs: renderRuns,
  run: renderRun,
  compare: renderCompare,
  evals: renderEvals, // #/evals/<run id>: a run's eval examples
  metrics: renderMetrics,
  sql: renderSql,
};
// Detail pages light up the nav entry of their list.
const NAV_OF = { trace: "traces", run: "runs", compare: "runs", evals: "runs" };

async function render() {
  const token = ++renderToken;
  disposeCharts();
  const route = parseRoute();
  const page = PAGES[route.page] ? route.page : "overview";
  const navPage = NAV_OF[page] || page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === navPage);
  const root = h("div"); // in the page from the start, so charts get their real size
  view.replaceChildren(root);
  const current = () => token === renderToken;
  signOut.hidden = !apiKey.get();
  // Which address the view shows and whether it is still loading: for tests and scripts.
  view.dataset.hash = location.hash;
  view.dataset.state = "loading";
  try {
    await PAGES[page](root, route, current);
    if (current()) view.dataset.state = "ready";
  } catch (err) {
    if (current()) view.dataset.state = "ready";
    if (!current()) return;
    if (err instanceof AuthError) {
      root.replaceChildren(signInForm(err.message));
      return;
    }
    root.replaceChildren(errorBox("page-error", err instanceof ApiError ? err.message : `Error: ${err.message}`));
    if (!(err instanceof ApiError)) console.warn(err);
  }
}

// The collector wants an API key (TRACEHOUSE_API_KEYS): ask for one, keep it in this tab
// (sessionStorage) or, when asked to remember, in this browser (localStorage).
function signInForm(message) {
  const key = h("input#api-key", { type: "password", autocomplete: "current-password", placeholder: "API key", size: 40, required: true });
  const remember = h("input#remember-key", { type: "checkbox" });
  return h("form.sign-in#sign-in", {
    onsubmit: (e) => {
      e.preventDefault();
      apiKey.set(key.value.trim(), remember.checked);
      render();
    },
  },
    h("h1", "Sign in"),
    h("p", apiKey.get() ? h("span.error-box#sign-in-error", message) : message,
      " Enter one of the keys the collector was started with (", h("code", "TRACEHOUSE_API_KEYS"), ")."),
    h("div.toolbar", key, h("button", { type: "submit" }, "Sign in")),
    h("label", remember, " remember on this browser"),
  );
}

const signOut = document.getElementById("sign-out");
signOut.addEventListener("click", () => {
  apiKey.clear();
  render();
});

// ---------- theme and start ----------

document.getElementById("theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem(THEME_KEY, next);
  render(); // charts pick their theme at creation
});
window.addEventListener("hashchange", render);
window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
render();
