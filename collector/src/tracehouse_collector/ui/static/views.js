// Views of recorded values shared by the trace view and the session transcript: attribute
// values (JSON pretty-printed and collapsible), exceptions with their stack trace as code, and
// the OpenTelemetry span status in words.

import { h } from "./lib.js";

// A JSON object or array, if the text is one; undefined for anything else (numbers, plain text).
export function jsonContainer(value) {
  if (value !== null && typeof value === "object") return value;
  if (typeof value !== "string" || !/^\s*[[{]/.test(value)) return undefined;
  try {
    const parsed = JSON.parse(value);
    return parsed !== null && typeof parsed === "object" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

const OPEN_UP_TO = 400; // characters of pretty JSON shown open; longer ones start collapsed

// An attribute value: JSON objects and arrays pretty-printed in a <details> (a one-line preview
// as its summary), anything else as wrapping text.
export function valueView(value) {
  const json = jsonContainer(value);
  if (json === undefined) return h("span.attr-text", value === null || value === undefined ? "" : String(value));
  const pretty = JSON.stringify(json, null, 2);
  const count = Array.isArray(json) ? `${json.length} item${json.length === 1 ? "" : "s"}` : `${Object.keys(json).length} key${Object.keys(json).length === 1 ? "" : "s"}`;
  return h("details.json-view", { open: pretty.length <= OPEN_UP_TO },
    h("summary", h("span.muted", `${Array.isArray(json) ? "[…]" : "{…}"} ${count}`)),
    h("pre.json", pretty));
}

// One exception as people read it: "Type: message" and the stack trace as code, line by line.
export function exceptionView(attrs, id) {
  const type = attrs["exception.type"] || "";
  const message = attrs["exception.message"] || "";
  const stack = attrs["exception.stacktrace"] || "";
  return h(`div.exception${id ? "#" + id : ""}`,
    h("div.exception-title", h("strong", type || "exception"), message ? `: ${message}` : ""),
    stack ? h("pre.stacktrace", h("code", stack)) : null);
}

// OTel's span status codes in words: Unset means the instrumentation reported no error.
const STATUS_WORDS = { Ok: "ok", Unset: "ok (no error reported)", Error: "error" };
export function statusText(code, message) {
  const words = STATUS_WORDS[code] || String(code || "").toLowerCase() || "unknown";
  return message ? `${words}: ${message}` : words;
}
