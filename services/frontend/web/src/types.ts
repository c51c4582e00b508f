// The shapes the frontend service's /api/* answers with (see docs/services.md).

export interface Product {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
  stock: number;
  /** product v2 and v3 only: the star rating (a visible sign of the version) */
  rating?: number | null;
  rating_count?: number | null;
  /** product v3 only */
  featured?: boolean | null;
  /** the product deployment that answered, e.g. "product-v2" */
  served_by: string;
}

export interface ProductList {
  items: Product[];
  version: string;
}

export interface OrderLine {
  product_id: string;
  quantity: number;
  name: string | null;
  unit_price_cents: number | null;
}

export type OrderStatus = "paid" | "pending" | "payment_declined" | "out_of_stock" | "rejected";

export interface Order {
  id: string;
  status: OrderStatus | string;
  items: OrderLine[];
  total_cents: number;
  currency: string;
  payment_id: string | null;
  /** whether the notification service accepted the confirmation email */
  notified: boolean;
  failure_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface User {
  id: string;
  email: string;
  name: string;
  created_at: string;
}

export interface Account {
  user: User;
  /** null when the order service did not answer: the profile still shows */
  orders: Order[] | null;
}
