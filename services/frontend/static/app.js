// The storefront's script: everything goes to /api/* on this origin; the frontend forwards it
// to the api-gateway and adds the login token from its HttpOnly cookie.
"use strict";

const cart = new Map(); // product id -> {name, price, quantity}

function $(id) { return document.getElementById(id); }

function say(text, isError) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function money(cents) { return "$" + (cents / 100).toFixed(2); }

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // works outside secure contexts too, unlike randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(method, path, body, headers) {
  const init = { method, headers: Object.assign({}, headers || {}), credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { ok: response.ok, status: response.status, data };
}

function problem(result) {
  const err = result.data && result.data.error;
  return err ? err.message : "HTTP " + result.status;
}

function renderCart() {
  const list = $("cart-lines");
  list.replaceChildren();
  let total = 0;
  for (const [id, line] of cart) {
    const li = document.createElement("li");
    li.dataset.id = id;
    li.textContent = line.quantity + " x " + line.name + " (" + money(line.price * line.quantity) + ")";
    list.appendChild(li);
    total += line.price * line.quantity;
  }
  $("cart-total").textContent = cart.size ? "Total: " + money(total) : "Your cart is empty.";
  $("place-order").disabled = cart.size === 0;
}

function renderOrders(orders) {
  const list = $("order-list");
  list.replaceChildren();
  for (const order of orders || []) {
    const li = document.createElement("li");
    li.dataset.id = order.id;
    const status = document.createElement("span");
    status.className = "order-status status-" + order.status;
    status.textContent = order.status;
    li.append("Order " + order.id.slice(0, 8) + " - " + money(order.total_cents) + " - ", status);
    if (order.notified) li.append(" - confirmation sent");
    list.appendChild(li);
  }
}

async function refreshAccount() {
  const result = await api("GET", "/api/me");
  const loggedIn = result.ok && result.data && result.data.user;
  $("whoami").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("auth").hidden = !!loggedIn;
  if (loggedIn) {
    $("whoami").textContent = "Logged in as " + result.data.user.email;
    renderOrders(result.data.orders);
  } else {
    renderOrders([]);
  }
}

async function onSignup(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { name: form.get("name"), email: form.get("email"), password: form.get("password") };
  const result = await api("POST", "/api/users", body);
  say(result.ok ? "Account created; log in now." : "Sign-up failed: " + problem(result), !result.ok);
}

async function onLogin(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await api("POST", "/api/login", { email: form.get("email"), password: form.get("password") });
  say(result.ok ? "Welcome back." : "Login failed: " + problem(result), !result.ok);
  if (result.ok) await refreshAccount();
}

async function onLogout() {
  await api("POST", "/api/logout");
  say("Logged out.");
  await refreshAccount();
}

let pendingKey = null; // kept until the order is settled, so a retry cannot order twice

async function onPlaceOrder() {
  if (!pendingKey) pendingKey = newKey();
  const items = Array.from(cart, ([id, line]) => ({ product_id: id, quantity: line.quantity }));
  $("place-order").disabled = true;
  const result = await api("POST", "/api/orders", { items }, { "Idempotency-Key": pendingKey });
  if (result.ok) {
    pendingKey = null;
    cart.clear();
    renderCart();
    say("Order " + result.data.id.slice(0, 8) + ": " + result.data.status, result.data.status !== "paid");
  } else {
    $("place-order").disabled = false;
    say("Order failed: " + problem(result) + " (you can retry safely)", true);
  }
  await refreshAccount();
}

function onAdd(event) {
  const button = event.target.closest("button.add");
  if (!button) return;
  const id = button.dataset.id;
  const line = cart.get(id) || { name: button.dataset.name, price: Number(button.dataset.price), quantity: 0 };
  line.quantity += 1;
  cart.set(id, line);
  renderCart();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signup-form").addEventListener("submit", onSignup);
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("place-order").addEventListener("click", onPlaceOrder);
  $("catalog").addEventListener("click", onAdd);
  renderCart();
  refreshAccount();
});
