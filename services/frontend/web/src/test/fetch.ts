// A fake shop for component tests: answers fetch() by "METHOD /path" and keeps every request.
import { vi } from "vitest";

export interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

export type Handler = (sent: Sent) => Response | Promise<Response>;

export function json(status: number, body: unknown, servedBy = ""): Response {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (servedBy) headers["x-served-by"] = servedBy;
  return new Response(JSON.stringify(body), { status, headers });
}

export function fakeShop(routes: Record<string, Handler | Handler[]>): Sent[] {
  const sent: Sent[] = [];
  const queues = new Map(Object.entries(routes).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]));
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const method = (init.method ?? "GET").toUpperCase();
      const request: Sent = {
        method,
        path: input,
        headers: { ...(init.headers as Record<string, string>) },
        body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
      };
      sent.push(request);
      const route = queues.get(`${method} ${input}`);
      if (route === undefined) throw new TypeError(`fake shop: no route for ${method} ${input}`);
      const handler = Array.isArray(route) ? (route.length > 1 ? route.shift()! : route[0]) : route;
      return handler(request);
    }),
  );
  return sent;
}

export const PRODUCT_V1 = {
  id: "grinder",
  name: "Hand grinder",
  description: "Steel burrs, 40 click settings.",
  price_cents: 7900,
  currency: "USD",
  stock: 12,
  served_by: "product-v1",
};

export const PRODUCT_V2 = { ...PRODUCT_V1, rating: 4.8, rating_count: 431, served_by: "product-v2" };

export const CHAIN_V1 = "frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0, product/v1/product-v1-0";
export const CHAIN_V2 = "frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0, product/v2/product-v2-0";

export const USER = { id: "u1", email: "ann@example.com", name: "Ann", created_at: "2026-01-01T00:00:00+00:00" };

export function order(status: string, notified: boolean) {
  return {
    id: "0123456789abcdef0123456789abcdef",
    status,
    items: [{ product_id: "grinder", quantity: 2, name: "Hand grinder", unit_price_cents: 7900 }],
    total_cents: 15800,
    currency: "USD",
    payment_id: status === "paid" ? "pay1" : null,
    notified,
    failure_reason: null,
    created_at: "2026-01-01T10:00:00+00:00",
    updated_at: "2026-01-01T10:00:00+00:00",
  };
}
