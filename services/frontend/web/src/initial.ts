// What the frontend service embedded in the page: the catalogue it fetched from the api-gateway
// while serving `GET /`, so the first paint already shows products (no second round trip).

import { parseServedBy, recordCall, type Hop } from "./mesh";
import type { ProductList } from "./types";

export interface InitialState {
  catalogue: {
    /** the api-gateway's status for GET /api/products; null when it could not be reached */
    status: number | null;
    body: unknown;
    /** x-served-by of the page itself: frontend, then the pods behind the catalogue */
    served_by: string;
  } | null;
}

export interface EmbeddedCatalogue {
  status: number | null;
  list: ProductList | null;
  body: unknown;
  hops: Hop[];
}

/** The embedded catalogue (recorded in the mesh panel as the page's own call), or null. */
export function readInitialState(doc: Document = document): EmbeddedCatalogue | null {
  const el = doc.getElementById("shop-state");
  let state: InitialState | null = null;
  try {
    state = el?.textContent ? (JSON.parse(el.textContent) as InitialState | null) : null;
  } catch {
    state = null;
  }
  const catalogue = state?.catalogue;
  if (!catalogue) return null;
  const hops = parseServedBy(catalogue.served_by);
  const ok = catalogue.status === 200 && Array.isArray((catalogue.body as ProductList | null)?.items);
  // the page's own status (503 when the catalogue failed), else the catalogue's
  const status = navigation()?.responseStatus || (ok ? 200 : catalogue.status);
  recordCall({ method: "GET", path: "/ (page)", status, ms: pageMs(), hops, upstreamMs: null });
  return { status: catalogue.status, list: ok ? (catalogue.body as ProductList) : null, body: catalogue.body, hops };
}

function navigation(): (PerformanceNavigationTiming & { responseStatus?: number }) | undefined {
  const entry = typeof performance !== "undefined" ? performance.getEntriesByType?.("navigation")[0] : undefined;
  return entry as (PerformanceNavigationTiming & { responseStatus?: number }) | undefined;
}

function pageMs(): number {
  const timing = navigation();
  return timing ? timing.responseEnd - timing.requestStart : 0;
}
