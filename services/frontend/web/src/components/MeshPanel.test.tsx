import { act, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { call } from "../api";
import { CHAIN_V2, fakeShop, json } from "../test/fetch";
import { MeshPanel } from "./MeshPanel";

describe("MeshPanel", () => {
  it("lists each call with its status and the pods that served it, newest first", async () => {
    fakeShop({
      "GET /api/products": () => json(200, { items: [], version: "v2" }, CHAIN_V2),
      "GET /api/me": () => json(401, { error: { code: "unauthorized", message: "no token" } }, "frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0, user/v1/user-v1-0"),
    });
    render(<MeshPanel />);
    expect(screen.getByText("No calls yet.")).toBeInTheDocument();
    await act(async () => {
      await call("GET", "/api/products", { doing: "load the catalogue" });
      await call("GET", "/api/me", { doing: "load your account" });
    });
    const rows = screen.getAllByRole("listitem");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("GET /api/me");
    expect(rows[0]).toHaveAttribute("data-status", "401");
    expect(rows[1]).toHaveTextContent("GET /api/products");
    const product = rows[1].querySelector('[data-service="product"]');
    expect(product).toHaveAttribute("data-version", "v2");
    expect(product).toHaveTextContent("product v2 product-v2-0");
  });

  it("says so when the shop did not answer at all", async () => {
    fakeShop({ "GET /api/products": () => Promise.reject(new TypeError("Failed to fetch")) });
    render(<MeshPanel />);
    await act(async () => {
      const r = await call("GET", "/api/products", { doing: "load the catalogue" });
      expect(r.ok).toBe(false);
    });
    expect(screen.getByRole("listitem")).toHaveTextContent("no answer");
  });
});
