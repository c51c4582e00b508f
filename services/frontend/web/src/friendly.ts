// What a shopper reads when a call fails: a sentence about what happened and what to do, never
// a blank page or a stack trace. The technical detail (status, error code) stays available in
// small print for the learner watching the mesh.

export interface Problem {
  /** HTTP status, or null when no answer came back at all */
  status: number | null;
  /** the service's error code (`injected_fault`, `upstream_unavailable`, ...) or "" */
  code: string;
  /** the service's own message, for the small print */
  detail: string;
  /** the sentence for the shopper */
  friendly: string;
}

interface FieldError {
  field: string;
  message: string;
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown; fields?: unknown };
}

function fieldNames(fields: unknown): string {
  if (!Array.isArray(fields)) return "";
  const names = (fields as FieldError[])
    .map((f) => String(f.field ?? "").split(".").pop() ?? "")
    .filter((n) => n && n !== "body");
  return [...new Set(names)].join(", ");
}

/**
 * The friendly message for a failed call. `doing` completes "We could not ..." (for example
 * "load the catalogue" or "place your order").
 */
export function describeFailure(status: number | null, body: unknown, doing: string): Problem {
  const err = (body as ErrorBody | null)?.error;
  const code = typeof err?.code === "string" ? err.code : "";
  const detail = typeof err?.message === "string" ? err.message : "";
  const could = `We could not ${doing}`;
  let friendly: string;
  if (status === null) {
    friendly = `${could}: the shop is not answering. Check your connection and try again.`;
  } else if (status === 401) {
    friendly = "Please log in first (or check your email and password).";
  } else if (status === 403) {
    friendly = `${could}: the shop's access policy does not allow it right now.`;
  } else if (status === 404) {
    friendly = `${could}: we could not find it. It may have been removed.`;
  } else if (status === 409) {
    friendly =
      code === "conflict" && detail.toLowerCase().includes("email")
        ? "An account with this email already exists. Log in instead."
        : `${could}: ${detail || "it conflicts with an earlier request"}.`;
  } else if (status === 400 || status === 422) {
    const names = fieldNames(err?.fields);
    friendly = names ? `Please check ${names} and try again.` : `${could}: please check what you entered.`;
  } else if (status === 429) {
    friendly = `${could}: the shop is busy right now. Please wait a moment and try again.`;
  } else if (status === 504) {
    friendly = `${could}: the shop took too long to answer. Please try again in a moment.`;
  } else if (status === 502 || status === 503) {
    friendly = `${could}: part of the shop is unavailable right now. Please try again in a moment.`;
  } else if (status >= 500) {
    friendly = `${could}: something went wrong on our side. Please try again.`;
  } else {
    friendly = `${could} (unexpected answer ${status}).`;
  }
  return { status, code, detail, friendly };
}
