import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { useCart } from "../cart";
import { fakeShop, json, order, PRODUCT_V1, USER } from "../test/fetch";
import type { Account } from "../types";
import { CartPage } from "./CartPage";

const ACCOUNT: Account = { user: USER, orders: [] };

function Harness({ account = ACCOUNT, onOrdered = async () => {} }: { account?: Account | null; onOrdered?: () => Promise<void> }) {
  const cart = useCart();
  return (
    <>
      <button type="button" onClick={() => cart.add(PRODUCT_V1)}>
        add grinder
      </button>
      <CartPage cart={cart} account={account} onOrdered={onOrdered} />
    </>
  );
}

describe("CartPage", () => {
  it("places the order with an Idempotency-Key and shows it paid and notified", async () => {
    const sent = fakeShop({ "POST /api/orders": () => json(201, order("paid", true)) });
    const onOrdered = vi.fn(async () => {});
    render(<Harness onOrdered={onOrdered} />);
    await userEvent.click(screen.getByText("add grinder"));
    await userEvent.click(screen.getByText("add grinder"));
    expect(screen.getByText("Total: $158.00")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    await screen.findByText("Thank you! Your order is paid.");
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toEqual({ items: [{ product_id: "grinder", quantity: 2 }] });
    expect(sent[0].headers["Idempotency-Key"]).toMatch(/^[0-9a-f]{32}$/);
    expect(screen.getByText("Confirmation email sent")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Place order" })).toBeNull(); // the cart is empty
    expect(onOrdered).toHaveBeenCalledOnce();
  });

  it("keeps the cart and the same Idempotency-Key when the order failed, so a retry cannot order twice", async () => {
    const sent = fakeShop({
      "POST /api/orders": [
        () => json(504, { error: { code: "upstream_timeout", message: "payment did not answer in time" } }),
        () => json(201, order("paid", true)),
      ],
    });
    render(<Harness />);
    await userEvent.click(screen.getByText("add grinder"));
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("We could not place your order: the shop took too long to answer.");
    expect(screen.getByText(/you will not be charged twice/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Try the order again" }));
    await screen.findByText("Thank you! Your order is paid.");
    expect(sent).toHaveLength(2);
    expect(sent[1].headers["Idempotency-Key"]).toBe(sent[0].headers["Idempotency-Key"]);
  });

  it("uses a new key for the next order once one is settled, and explains a declined payment", async () => {
    const sent = fakeShop({
      "POST /api/orders": [() => json(201, order("payment_declined", false)), () => json(201, order("paid", true))],
    });
    render(<Harness />);
    await userEvent.click(screen.getByText("add grinder"));
    await userEvent.click(screen.getByRole("button", { name: "Place order" }));
    await screen.findByText(/Your payment was declined/);
    expect(screen.getByText("No confirmation email")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Place order" })); // the cart was kept
    await screen.findByText("Thank you! Your order is paid.");
    expect(sent[1].headers["Idempotency-Key"]).not.toBe(sent[0].headers["Idempotency-Key"]);
  });

  it("asks a visitor to log in before ordering", async () => {
    fakeShop({});
    render(<Harness account={null} />);
    await userEvent.click(screen.getByText("add grinder"));
    expect(screen.queryByRole("button", { name: "Place order" })).toBeNull();
    expect(screen.getByRole("link", { name: "Log in or sign up" })).toHaveAttribute("href", "#/account");
  });
});

describe("useCart", () => {
  it("keeps the cart across a reload (sessionStorage)", async () => {
    fakeShop({});
    const first = render(<Harness />);
    await userEvent.click(screen.getByText("add grinder"));
    first.unmount();
    render(<Harness />);
    await waitFor(() => expect(screen.getByText("Total: $79.00")).toBeInTheDocument());
  });
});
