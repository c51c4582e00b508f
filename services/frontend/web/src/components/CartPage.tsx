import { useState } from "react";
import { call } from "../api";
import { cartTotal, idempotencyKeyFor, orderItems, settleIdempotencyKey, type Cart } from "../cart";
import { money } from "../format";
import type { Problem } from "../friendly";
import { href } from "../router";
import type { Account, Order } from "../types";
import { Notice } from "./Notice";
import { OrderSummary, outcomeText } from "./OrderSummary";

interface Props {
  cart: Cart;
  account: Account | null;
  onOrdered: () => Promise<void>;
}

/** The cart and checkout: `POST /api/orders` with an Idempotency-Key that stays the same until
 * an order comes back, so "try again" after a timeout or a 503 cannot order twice. The order
 * service then reserves stock (product), charges (payment) and sends the confirmation
 * (notification). */
export function CartPage({ cart, account, onOrdered }: Props) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [placed, setPlaced] = useState<Order | null>(null);

  async function checkout() {
    setBusy(true);
    setProblem(null);
    setPlaced(null);
    const key = idempotencyKeyFor(cart.lines);
    const r = await call<Order>("POST", "/api/orders", {
      body: { items: orderItems(cart.lines) },
      headers: { "Idempotency-Key": key },
      doing: "place your order",
    });
    if (r.ok) {
      setPlaced(r.data);
      if (r.data.status !== "pending") settleIdempotencyKey();
      if (r.data.status === "paid") cart.clear();
      await onOrdered();
    } else {
      setProblem(r.problem);
    }
    setBusy(false);
  }

  return (
    <section id="cart-page">
      <h2>Your cart</h2>
      {placed && (
        <div className={`order-result status-${placed.status}`} role="status">
          <p className="outcome">{outcomeText(placed)}</p>
          <ul className="orders">
            <OrderSummary order={placed} />
          </ul>
          <a href={href({ page: "orders" })}>See all your orders</a>
        </div>
      )}
      {problem && (
        <>
          <Notice problem={problem} onRetry={() => void checkout()} retryLabel="Try the order again" />
          <p className="hint">Your cart is kept. Trying again is safe: you will not be charged twice.</p>
        </>
      )}
      {cart.lines.length === 0 ? (
        !placed && (
          <p className="empty">
            Your cart is empty. <a href={href({ page: "catalogue" })}>Browse the shop</a>
          </p>
        )
      ) : (
        <>
          <ul id="cart-lines">
            {cart.lines.map((line) => (
              <li key={line.id} data-id={line.id}>
                <span className="line-name">{line.name}</span>
                <span className="qty">
                  <button type="button" aria-label={`One less ${line.name}`} onClick={() => cart.setQuantity(line.id, line.quantity - 1)}>
                    −
                  </button>
                  <span className="line-quantity">{line.quantity}</span>
                  <button type="button" aria-label={`One more ${line.name}`} onClick={() => cart.setQuantity(line.id, line.quantity + 1)}>
                    +
                  </button>
                </span>
                <span className="line-total">{money(line.price_cents * line.quantity, line.currency)}</span>
              </li>
            ))}
          </ul>
          <p id="cart-total">Total: {money(cartTotal(cart.lines))}</p>
          {account ? (
            <button type="button" id="place-order" disabled={busy} onClick={() => void checkout()}>
              {busy ? "Placing your order…" : "Place order"}
            </button>
          ) : (
            <p className="hint">
              <a href={href({ page: "account" })}>Log in or sign up</a> to place your order.
            </p>
          )}
        </>
      )}
    </section>
  );
}
