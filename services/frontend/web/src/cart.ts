// The cart, kept in sessionStorage so a reload keeps it, and the Idempotency-Key of the order
// attempt in flight: it is reused until the order is settled, so a retry after a timeout or a
// 503 can never order (or charge) twice. A different cart gets a new key.

import { useCallback, useState } from "react";
import { newIdempotencyKey } from "./api";
import type { Product } from "./types";

export interface CartLine {
  id: string;
  name: string;
  price_cents: number;
  currency: string;
  quantity: number;
}

const CART = "meshplay.cart";
const PENDING = "meshplay.pending-order";
export const MAX_QUANTITY = 100;

function read<T>(key: string, fallback: T): T {
  try {
    const raw = window.sessionStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : fallback;
  } catch {
    return fallback;
  }
}

function write(key: string, value: unknown): void {
  try {
    if (value === null) window.sessionStorage.removeItem(key);
    else window.sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the cart still works for this page
  }
}

export function cartTotal(lines: CartLine[]): number {
  return lines.reduce((sum, line) => sum + line.price_cents * line.quantity, 0);
}

export function orderItems(lines: CartLine[]): { product_id: string; quantity: number }[] {
  return lines.map((line) => ({ product_id: line.id, quantity: line.quantity }));
}

interface Pending {
  key: string;
  items: string;
}

/** The key for ordering `lines`: the pending attempt's key if it was for the same items. */
export function idempotencyKeyFor(lines: CartLine[]): string {
  const items = JSON.stringify(orderItems(lines));
  const pending = read<Pending | null>(PENDING, null);
  if (pending && pending.items === items) return pending.key;
  const key = newIdempotencyKey();
  write(PENDING, { key, items });
  return key;
}

/** The order attempt is settled (an order came back): the next checkout gets a new key. */
export function settleIdempotencyKey(): void {
  write(PENDING, null);
}

export interface Cart {
  lines: CartLine[];
  count: number;
  add: (product: Pick<Product, "id" | "name" | "price_cents" | "currency">, quantity?: number) => void;
  setQuantity: (id: string, quantity: number) => void;
  clear: () => void;
}

export function useCart(): Cart {
  const [lines, setLines] = useState<CartLine[]>(() => read<CartLine[]>(CART, []));
  const update = useCallback((change: (old: CartLine[]) => CartLine[]) => {
    setLines((old) => {
      const next = change(old);
      write(CART, next);
      return next;
    });
  }, []);
  const add = useCallback<Cart["add"]>(
    (product, quantity = 1) =>
      update((old) => {
        const found = old.find((line) => line.id === product.id);
        if (found) {
          return old.map((line) =>
            line.id === product.id ? { ...line, quantity: Math.min(MAX_QUANTITY, line.quantity + quantity) } : line,
          );
        }
        const { id, name, price_cents, currency } = product;
        return [...old, { id, name, price_cents, currency, quantity: Math.min(MAX_QUANTITY, quantity) }];
      }),
    [update],
  );
  const setQuantity = useCallback<Cart["setQuantity"]>(
    (id, quantity) =>
      update((old) =>
        quantity <= 0
          ? old.filter((line) => line.id !== id)
          : old.map((line) => (line.id === id ? { ...line, quantity: Math.min(MAX_QUANTITY, quantity) } : line)),
      ),
    [update],
  );
  const clear = useCallback(() => update(() => []), [update]);
  return { lines, count: lines.reduce((n, line) => n + line.quantity, 0), add, setQuantity, clear };
}
