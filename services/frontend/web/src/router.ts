// A hash router: the frontend service serves one page (`GET /`), and the views live after `#`,
// so a deep link works through any gateway without server-side routes.

import { useEffect, useState } from "react";

export type Route =
  | { page: "catalogue" }
  | { page: "product"; id: string }
  | { page: "cart" }
  | { page: "account" }
  | { page: "orders" };

export function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  switch (parts[0]) {
    case "product":
      return parts[1] ? { page: "product", id: decodeURIComponent(parts[1]) } : { page: "catalogue" };
    case "cart":
      return { page: "cart" };
    case "account":
      return { page: "account" };
    case "orders":
      return { page: "orders" };
    default:
      return { page: "catalogue" };
  }
}

export function href(route: Route): string {
  switch (route.page) {
    case "product":
      return `#/product/${encodeURIComponent(route.id)}`;
    case "catalogue":
      return "#/";
    default:
      return `#/${route.page}`;
  }
}

export function navigate(route: Route): void {
  window.location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
