import { useEffect } from "react";
import { money } from "../format";
import type { Problem } from "../friendly";
import { href } from "../router";
import type { Product, ProductList } from "../types";
import { Notice } from "./Notice";
import { ProductTile, Stars, VersionBadge } from "./ProductBits";

export type CatalogueState =
  | { state: "loading" }
  | { state: "ok"; list: ProductList }
  | { state: "failed"; problem: Problem };

export function ProductCard({ product, onAdd }: { product: Product; onAdd: (p: Product) => void }) {
  return (
    <article className="product" data-id={product.id}>
      <ProductTile product={product} />
      <div className="product-body">
        <h3>
          <a href={href({ page: "product", id: product.id })}>{product.name}</a>
        </h3>
        <VersionBadge servedBy={product.served_by} />
        {product.featured && <span className="badge featured">featured</span>}
        <p className="description">{product.description}</p>
        <Stars product={product} />
        <p className="price">{money(product.price_cents, product.currency)}</p>
        <p className="stock">{product.stock > 0 ? `${product.stock} in stock` : "Sold out"}</p>
        <button type="button" className="add" disabled={product.stock <= 0} onClick={() => onAdd(product)}>
          Add to cart
        </button>
      </div>
    </article>
  );
}

export function Catalogue({
  catalogue,
  onReload,
  onAdd,
}: {
  catalogue: CatalogueState;
  onReload: () => void;
  onAdd: (p: Product) => void;
}) {
  useEffect(() => {
    // when products first show: the "meaningful paint" benchmarks/bench_storefront.py reads
    if (catalogue.state === "ok" && performance.getEntriesByName("catalogue-shown").length === 0) {
      performance.mark("catalogue-shown");
    }
  }, [catalogue.state]);
  return (
    <section id="catalogue" aria-labelledby="catalogue-title">
      <div className="section-head">
        <h2 id="catalogue-title">Coffee gear</h2>
        {catalogue.state === "ok" && (
          <p className="served-note">
            Catalogue from <strong>product {catalogue.list.version}</strong>
          </p>
        )}
        <button type="button" className="secondary" onClick={onReload}>
          Refresh
        </button>
      </div>
      {catalogue.state === "loading" && <p className="loading">Loading the catalogue…</p>}
      {catalogue.state === "failed" && <Notice problem={catalogue.problem} onRetry={onReload} />}
      {catalogue.state === "ok" && (
        <div className="grid">
          {catalogue.list.items.map((product) => (
            <ProductCard key={product.id} product={product} onAdd={onAdd} />
          ))}
        </div>
      )}
    </section>
  );
}
