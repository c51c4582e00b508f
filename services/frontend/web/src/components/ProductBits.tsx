import { versionFromServedBy } from "../format";
import type { Product } from "../types";

/** Which product version answered: the badge that makes a traffic shift visible. */
export function VersionBadge({ servedBy }: { servedBy: string }) {
  const version = versionFromServedBy(servedBy);
  return (
    <span className={`badge version-${version}`} title={`served by ${servedBy}`} data-version={version}>
      product {version}
    </span>
  );
}

/** Star rating (product v2 and later); v1 has no ratings and shows none. */
export function Stars({ product }: { product: Product }) {
  if (typeof product.rating !== "number") return null;
  const full = Math.round(product.rating);
  return (
    <p className="rating" title={`${product.rating.toFixed(1)} of 5`}>
      <span aria-hidden="true">{"★".repeat(full) + "☆".repeat(Math.max(0, 5 - full))}</span>{" "}
      <span className="rating-text">
        {product.rating.toFixed(1)} ({product.rating_count ?? 0} ratings)
      </span>
    </p>
  );
}

/** A coloured tile with the product's initial (no images: the page loads nothing external). */
export function ProductTile({ product }: { product: Product }) {
  let hash = 0;
  for (const ch of product.id) hash = (hash * 31 + ch.charCodeAt(0)) % 360;
  return (
    <div className="tile" style={{ background: `hsl(${hash} 45% 82%)` }} aria-hidden="true">
      {product.name.charAt(0)}
    </div>
  );
}
