import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { describeFailure } from "../friendly";
import { PRODUCT_V1, PRODUCT_V2 } from "../test/fetch";
import { Catalogue } from "./Catalogue";

describe("Catalogue", () => {
  it("shows product v1 rows without ratings", () => {
    render(<Catalogue catalogue={{ state: "ok", list: { items: [PRODUCT_V1], version: "v1" } }} onReload={() => {}} onAdd={() => {}} />);
    const card = screen.getByRole("article");
    expect(within(card).getByText("product v1")).toHaveAttribute("data-version", "v1");
    expect(within(card).queryByTitle(/of 5/)).toBeNull();
    expect(within(card).getByText("$79.00")).toBeInTheDocument();
  });

  it("shows the v2 badge and the star rating when product v2 answered", () => {
    render(<Catalogue catalogue={{ state: "ok", list: { items: [PRODUCT_V2], version: "v2" } }} onReload={() => {}} onAdd={() => {}} />);
    const card = screen.getByRole("article");
    expect(within(card).getByText("product v2")).toHaveAttribute("data-version", "v2");
    expect(within(card).getByTitle("4.8 of 5")).toHaveTextContent("★★★★★ 4.8 (431 ratings)");
    expect(screen.getByText(/Catalogue from/)).toHaveTextContent("Catalogue from product v2");
  });

  it("adds a product to the cart", async () => {
    const onAdd = vi.fn();
    render(<Catalogue catalogue={{ state: "ok", list: { items: [PRODUCT_V1], version: "v1" } }} onReload={() => {}} onAdd={onAdd} />);
    await userEvent.click(screen.getByRole("button", { name: "Add to cart" }));
    expect(onAdd).toHaveBeenCalledWith(PRODUCT_V1);
  });

  it("shows a friendly message and a retry instead of a blank grid when the catalogue failed", async () => {
    const onReload = vi.fn();
    const problem = describeFailure(503, { error: { code: "upstream_error", message: "api-gateway answered 503 without JSON" } }, "load the catalogue");
    render(<Catalogue catalogue={{ state: "failed", problem }} onReload={onReload} onAdd={() => {}} />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("We could not load the catalogue: part of the shop is unavailable right now.");
    expect(alert).toHaveTextContent("HTTP 503 · upstream_error");
    await userEvent.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(onReload).toHaveBeenCalledOnce();
    expect(screen.queryByRole("article")).toBeNull();
  });
});
