import { h } from "../lib.js";

// Placeholder while the page is being built this session (owner: see /work/team/RULES.md).
export async function renderSessions(root) {
  root.append(h("h1", "Sessions"));
}
