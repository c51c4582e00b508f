// Small formatting helpers shared by the components.

export function money(cents: number, currency = "USD"): string {
  const amount = (cents / 100).toFixed(2);
  return currency === "USD" ? `$${amount}` : `${currency} ${amount}`;
}

/** "product-v2" -> "v2" (the product deployment that served a catalogue row). */
export function versionFromServedBy(servedBy: string): string {
  const match = /-(v\d+)$/.exec(servedBy);
  return match ? match[1] : servedBy;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

const STATUS_TEXT: Record<string, string> = {
  paid: "Paid",
  pending: "Pending",
  payment_declined: "Payment declined",
  out_of_stock: "Out of stock",
  rejected: "Rejected",
};

export function orderStatusText(status: string): string {
  return STATUS_TEXT[status] ?? status;
}
