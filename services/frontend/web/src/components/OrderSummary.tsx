import { money, orderStatusText, shortId } from "../format";
import type { Order } from "../types";

const OUTCOME: Record<string, string> = {
  paid: "Thank you! Your order is paid.",
  payment_declined: "Your payment was declined. Nothing was charged, and the items are back in stock.",
  out_of_stock: "Sorry, part of your order is out of stock. Nothing was charged.",
  rejected: "Sorry, we could not take this order (a product is no longer sold). Nothing was charged.",
  pending: "Your order is not finished yet: a step could not be completed. Trying again is safe.",
};

export function outcomeText(order: Order): string {
  return OUTCOME[order.status] ?? `Order status: ${order.status}.`;
}

/** One order: status, lines, total and whether the confirmation was sent (notification). */
export function OrderSummary({ order }: { order: Order }) {
  return (
    <li className="order" data-id={order.id}>
      <div className="order-head">
        <span className="order-id">Order {shortId(order.id)}</span>
        <span className={`order-status status-${order.status}`}>{orderStatusText(order.status)}</span>
        <span className="order-total">{money(order.total_cents, order.currency)}</span>
      </div>
      <p className="order-lines">
        {order.items.map((line) => `${line.quantity} × ${line.name ?? line.product_id}`).join(", ")}
      </p>
      <p className={`order-notified ${order.notified ? "sent" : "not-sent"}`}>
        {order.notified
          ? "Confirmation email sent"
          : order.status === "paid"
            ? "Confirmation email not sent yet"
            : "No confirmation email"}
      </p>
      <p className="order-date">{new Date(order.created_at).toLocaleString()}</p>
    </li>
  );
}
