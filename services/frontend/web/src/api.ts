// The page's only way to the shop: fetch /api/* on this origin (the frontend service forwards it
// to the api-gateway and adds the login token from its HttpOnly cookie). Every call is recorded
// for the mesh panel with its status, duration and the pods that served it.

import { describeFailure, type Problem } from "./friendly";
import { parseServedBy, recordCall, SERVED_BY, type Hop } from "./mesh";

export type Result<T> =
  | { ok: true; status: number; data: T; hops: Hop[] }
  | { ok: false; status: number | null; problem: Problem; hops: Hop[] };

export interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** completes "We could not ..." in the friendly message */
  doing: string;
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

export async function call<T>(method: string, path: string, options: CallOptions): Promise<Result<T>> {
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const started = now();
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    recordCall({ method, path, status: null, ms: now() - started, hops: [], upstreamMs: null });
    return { ok: false, status: null, problem: describeFailure(null, null, options.doing), hops: [] };
  }
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    data = null; // an empty or non-JSON body (e.g. a proxy's plain-text error)
  }
  const hops = parseServedBy(response.headers.get(SERVED_BY));
  const upstream = Number(response.headers.get("x-envoy-upstream-service-time"));
  recordCall({
    method,
    path,
    status: response.status,
    ms: now() - started,
    hops,
    upstreamMs: Number.isFinite(upstream) && response.headers.has("x-envoy-upstream-service-time") ? upstream : null,
  });
  if (response.ok) return { ok: true, status: response.status, data: data as T, hops };
  return { ok: false, status: response.status, problem: describeFailure(response.status, data, options.doing), hops };
}

/** A fresh Idempotency-Key (hex; works outside secure contexts, unlike randomUUID). */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
