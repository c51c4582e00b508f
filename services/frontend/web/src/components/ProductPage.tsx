import { useEffect, useState } from "react";
import { call } from "../api";
import { money } from "../format";
import type { Problem } from "../friendly";
import { href } from "../router";
import type { Product } from "../types";
import { Notice } from "./Notice";
import { ProductTile, Stars, VersionBadge } from "./ProductBits";

export function ProductPage({ id, onAdd }: { id: string; onAdd: (p: Product, quantity: number) => void }) {
  const [product, setProduct] = useState<Product | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [quantity, setQuantity] = useState(1);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let live = true;
    setProblem(null);
    call<Product>("GET", `/api/products/${encodeURIComponent(id)}`, { doing: "load this product" }).then((r) => {
      if (!live) return;
      if (r.ok) setProduct(r.data);
      else setProblem(r.problem);
    });
    return () => {
      live = false;
    };
  }, [id, attempt]);

  return (
    <section id="product-page">
      <p>
        <a href={href({ page: "catalogue" })}>← All products</a>
      </p>
      {problem && <Notice problem={problem} onRetry={() => setAttempt((n) => n + 1)} />}
      {!problem && !product && <p className="loading">Loading…</p>}
      {!problem && product && (
        <article className="product-detail" data-id={product.id}>
          <ProductTile product={product} />
          <div>
            <h2>{product.name}</h2>
            <VersionBadge servedBy={product.served_by} />
            <p className="description">{product.description}</p>
            <Stars product={product} />
            <p className="price">{money(product.price_cents, product.currency)}</p>
            <p className="stock">{product.stock} in stock</p>
            <label>
              Quantity{" "}
              <input
                type="number"
                min={1}
                max={100}
                value={quantity}
                onChange={(e) => setQuantity(Math.max(1, Math.min(100, Number(e.target.value) || 1)))}
              />
            </label>{" "}
            <button type="button" className="add" onClick={() => onAdd(product, quantity)}>
              Add to cart
            </button>
          </div>
        </article>
      )}
    </section>
  );
}
