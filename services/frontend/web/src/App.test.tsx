import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { readInitialState } from "./initial";
import { CHAIN_V1, CHAIN_V2, fakeShop, json, order, PRODUCT_V1, PRODUCT_V2, USER } from "./test/fetch";

function embed(state: unknown): void {
  document.body.innerHTML = `<script id="shop-state" type="application/json">${JSON.stringify(state)}</script>`;
}

const NOT_LOGGED_IN = () => json(401, { error: { code: "unauthorized", message: "missing token" } });

describe("App", () => {
  it("paints the catalogue the frontend embedded, without fetching it again", async () => {
    embed({ catalogue: { status: 200, body: { items: [PRODUCT_V1], version: "v1" }, served_by: CHAIN_V1 } });
    const sent = fakeShop({ "GET /api/me": NOT_LOGGED_IN });
    render(<App embedded={readInitialState()} />);
    expect(screen.getByRole("article")).toHaveTextContent("Hand grinder");
    const page = screen.getByText("GET / (page)").closest("li")!;
    expect(within(page).getByText(/product-v1-0/)).toBeInTheDocument();
    await screen.findByText("GET /api/me");
    expect(sent.map((s) => s.path)).toEqual(["/api/me"]);
  });

  it("shows a friendly error, not a blank page, when the embedded catalogue failed, and recovers on retry", async () => {
    embed({ catalogue: { status: 503, body: null, served_by: "frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0" } });
    fakeShop({
      "GET /api/me": NOT_LOGGED_IN,
      "GET /api/products": () => json(200, { items: [PRODUCT_V2], version: "v2" }, CHAIN_V2),
    });
    render(<App embedded={readInitialState()} />);
    expect(screen.getByRole("alert")).toHaveTextContent("We could not load the catalogue: part of the shop is unavailable right now.");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    const card = await screen.findByRole("article");
    expect(within(card).getByText("product v2")).toHaveAttribute("data-version", "v2");
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("goes from product to cart to a paid order and the order history", async () => {
    embed({ catalogue: { status: 200, body: { items: [PRODUCT_V1], version: "v1" }, served_by: CHAIN_V1 } });
    fakeShop({
      "GET /api/me": () => json(200, { user: USER, orders: [] }),
      "POST /api/orders": () => json(201, order("paid", true)),
      "GET /api/orders": () => json(200, { items: [order("paid", true)] }),
      "GET /api/products/grinder": () => json(200, PRODUCT_V1, CHAIN_V1),
    });
    render(<App embedded={readInitialState()} />);
    await screen.findByRole("link", { name: "Ann" });
    await userEvent.click(screen.getByRole("link", { name: "Hand grinder" }));
    await screen.findByRole("spinbutton");
    await userEvent.click(within(document.getElementById("product-page")!).getByRole("button", { name: "Add to cart" }));
    expect(document.getElementById("cart-count")).toHaveTextContent("1");
    await userEvent.click(screen.getByRole("link", { name: /Cart/ }));
    await userEvent.click(await screen.findByRole("button", { name: "Place order" }));
    await screen.findByText("Thank you! Your order is paid.");
    await userEvent.click(screen.getByRole("link", { name: "Orders" }));
    await screen.findByText("Your orders");
    const row = await vi.waitFor(() => {
      const found = document.querySelector("#order-list li");
      if (!found) throw new Error("no order in the history yet");
      return found;
    });
    expect(row).toHaveTextContent("Paid");
    expect(row).toHaveTextContent("Confirmation email sent");
  });
});
