import { useEffect, useState } from "react";
import { call } from "../api";
import type { Problem } from "../friendly";
import { href } from "../router";
import type { Account, Order } from "../types";
import { Notice } from "./Notice";
import { OrderSummary } from "./OrderSummary";

/** Order history (`GET /api/orders`, the caller's newest first), with each order's payment and
 * confirmation status. */
export function OrdersPage({ account }: { account: Account | null }) {
  const [orders, setOrders] = useState<Order[] | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [attempt, setAttempt] = useState(0);
  const email = account?.user.email;

  useEffect(() => {
    if (!email) return;
    let live = true;
    setProblem(null);
    call<{ items: Order[] }>("GET", "/api/orders", { doing: "load your orders" }).then((r) => {
      if (!live) return;
      if (r.ok) setOrders(r.data.items);
      else setProblem(r.problem);
    });
    return () => {
      live = false;
    };
  }, [email, attempt]);

  if (!account) {
    return (
      <section id="orders-page">
        <h2>Your orders</h2>
        <p className="hint">
          <a href={href({ page: "account" })}>Log in</a> to see your orders.
        </p>
      </section>
    );
  }
  return (
    <section id="orders-page">
      <h2>Your orders</h2>
      {problem && <Notice problem={problem} onRetry={() => setAttempt((n) => n + 1)} />}
      {!problem && orders === null && <p className="loading">Loading your orders…</p>}
      {orders !== null && orders.length === 0 && <p className="empty">No orders yet.</p>}
      {orders !== null && orders.length > 0 && (
        <ul className="orders" id="order-list">
          {orders.map((order) => (
            <OrderSummary key={order.id} order={order} />
          ))}
        </ul>
      )}
    </section>
  );
}
