import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { fakeShop, json, USER } from "../test/fetch";
import { AccountPage } from "./AccountPage";

async function fill(form: string, values: Record<string, string>) {
  for (const [name, value] of Object.entries(values)) {
    await userEvent.type(document.querySelector(`${form} input[name=${name}]`) as HTMLInputElement, value);
  }
}

describe("AccountPage", () => {
  it("signs up, then logs in with the same credentials", async () => {
    const sent = fakeShop({
      "POST /api/users": () => json(201, USER),
      "POST /api/login": () => json(200, { logged_in: true, expires_in: 3600 }),
    });
    const onLoggedIn = vi.fn(async () => {});
    render(<AccountPage account={null} onLoggedIn={onLoggedIn} onLogout={async () => {}} />);
    await fill("#signup-form", { name: "Ann", email: "ann@example.com", password: "correct horse" });
    await userEvent.click(screen.getByRole("button", { name: "Sign up" }));
    await vi.waitFor(() => expect(onLoggedIn).toHaveBeenCalledOnce());
    expect(sent.map((s) => `${s.method} ${s.path}`)).toEqual(["POST /api/users", "POST /api/login"]);
    expect(sent[1].body).toEqual({ email: "ann@example.com", password: "correct horse" });
  });

  it("explains a taken email and a wrong password in words", async () => {
    fakeShop({
      "POST /api/users": () => json(409, { error: { code: "conflict", message: "email already registered" } }),
      "POST /api/login": () => json(401, { error: { code: "unauthorized", message: "wrong email or password" } }),
    });
    render(<AccountPage account={null} onLoggedIn={async () => {}} onLogout={async () => {}} />);
    await fill("#signup-form", { name: "Ann", email: "ann@example.com", password: "correct horse" });
    await userEvent.click(screen.getByRole("button", { name: "Sign up" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("An account with this email already exists. Log in instead.");
    await fill("#login-form", { email: "ann@example.com", password: "wrong-pass" });
    await userEvent.click(screen.getByRole("button", { name: "Log in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Please log in first (or check your email and password).");
  });

  it("shows who is logged in", () => {
    render(<AccountPage account={{ user: USER, orders: [] }} onLoggedIn={async () => {}} onLogout={async () => {}} />);
    expect(screen.getByText(/Logged in as/)).toHaveTextContent("Logged in as ann@example.com (Ann)");
  });
});
