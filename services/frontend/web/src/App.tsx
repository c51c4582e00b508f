import { useCallback, useEffect, useState } from "react";
import { call } from "./api";
import { useCart } from "./cart";
import { AccountPage } from "./components/AccountPage";
import { CartPage } from "./components/CartPage";
import { Catalogue, type CatalogueState } from "./components/Catalogue";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { MeshPanel } from "./components/MeshPanel";
import { Notice } from "./components/Notice";
import { OrdersPage } from "./components/OrdersPage";
import { ProductPage } from "./components/ProductPage";
import { describeFailure, type Problem } from "./friendly";
import type { EmbeddedCatalogue } from "./initial";
import { href, useRoute, type Route } from "./router";
import type { Account, Product, ProductList } from "./types";

function initialCatalogue(embedded: EmbeddedCatalogue | null): CatalogueState {
  if (!embedded) return { state: "loading" };
  if (embedded.list) return { state: "ok", list: embedded.list };
  return { state: "failed", problem: describeFailure(embedded.status, embedded.body, "load the catalogue") };
}

function NavLink({ to, current, children }: { to: Route; current: Route; children: React.ReactNode }) {
  const active = to.page === current.page;
  return (
    <a href={href(to)} className={active ? "active" : undefined} aria-current={active ? "page" : undefined}>
      {children}
    </a>
  );
}

export function App({ embedded }: { embedded: EmbeddedCatalogue | null }) {
  const route = useRoute();
  const cart = useCart();
  const [catalogue, setCatalogue] = useState<CatalogueState>(() => initialCatalogue(embedded));
  const [account, setAccount] = useState<Account | null>(null);
  const [accountProblem, setAccountProblem] = useState<Problem | null>(null);
  const [added, setAdded] = useState("");

  const loadCatalogue = useCallback(async () => {
    const r = await call<ProductList>("GET", "/api/products", { doing: "load the catalogue" });
    setCatalogue(r.ok ? { state: "ok", list: r.data } : { state: "failed", problem: r.problem });
  }, []);

  const loadAccount = useCallback(async () => {
    const r = await call<Account>("GET", "/api/me", { doing: "load your account" });
    if (r.ok) {
      setAccount(r.data);
      setAccountProblem(null);
    } else {
      setAccount(null);
      // not being logged in is normal; anything else is worth a word
      setAccountProblem(r.status === 401 ? null : r.problem);
    }
  }, []);

  useEffect(() => {
    if (!embedded) void loadCatalogue();
    void loadAccount();
  }, [embedded, loadCatalogue, loadAccount]);

  useEffect(() => setAdded(""), [route]); // the "added to your cart" line belongs to one view

  const onAdd = useCallback(
    (product: Product, quantity = 1) => {
      cart.add(product, quantity);
      setAdded(`${product.name} added to your cart.`);
    },
    [cart],
  );

  async function logout() {
    await call("POST", "/api/logout", { doing: "log you out" });
    await loadAccount();
  }

  return (
    <div className="layout">
      <header className="top">
        <a className="brand" href={href({ page: "catalogue" })}>
          Meshplay Coffee
        </a>
        <nav>
          <NavLink to={{ page: "catalogue" }} current={route}>
            Shop
          </NavLink>
          <NavLink to={{ page: "cart" }} current={route}>
            Cart <span className="count" id="cart-count">{cart.count}</span>
          </NavLink>
          <NavLink to={{ page: "orders" }} current={route}>
            Orders
          </NavLink>
          <NavLink to={{ page: "account" }} current={route}>
            {account ? account.user.name : "Log in"}
          </NavLink>
        </nav>
      </header>
      <main>
        {added && (
          <p className="added" role="status">
            {added} <a href={href({ page: "cart" })}>Go to cart</a>
          </p>
        )}
        {accountProblem && <Notice problem={accountProblem} onRetry={() => void loadAccount()} />}
        <ErrorBoundary>
          {route.page === "catalogue" && <Catalogue catalogue={catalogue} onReload={() => void loadCatalogue()} onAdd={onAdd} />}
          {route.page === "product" && <ProductPage id={route.id} onAdd={onAdd} />}
          {route.page === "cart" && <CartPage cart={cart} account={account} onOrdered={loadAccount} />}
          {route.page === "orders" && <OrdersPage account={account} />}
          {route.page === "account" && <AccountPage account={account} onLoggedIn={loadAccount} onLogout={logout} />}
        </ErrorBoundary>
      </main>
      <MeshPanel />
    </div>
  );
}
