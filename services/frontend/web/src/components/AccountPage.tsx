import { useState, type FormEvent } from "react";
import { call } from "../api";
import type { Problem } from "../friendly";
import type { Account, User } from "../types";
import { Notice } from "./Notice";

interface Props {
  account: Account | null;
  /** called after a successful log-in (the token is now in the HttpOnly cookie) */
  onLoggedIn: () => Promise<void>;
  onLogout: () => Promise<void>;
}

function field(form: HTMLFormElement, name: string): string {
  return String(new FormData(form).get(name) ?? "");
}

/** Sign up (user service `POST /users`) and log in (`POST /login`: an RS256 JWT, kept by the
 * frontend service in an HttpOnly cookie; the page never sees the token). */
export function AccountPage({ account, onLoggedIn, onLogout }: Props) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);

  async function logIn(email: string, password: string): Promise<boolean> {
    const r = await call<{ logged_in: boolean; expires_in: number }>("POST", "/api/login", {
      body: { email, password },
      doing: "log you in",
    });
    if (!r.ok) {
      setProblem(r.problem);
      return false;
    }
    await onLoggedIn();
    return true;
  }

  async function onSignup(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const body = { name: field(form, "name"), email: field(form, "email"), password: field(form, "password") };
    setBusy(true);
    setProblem(null);
    setMessage("");
    const r = await call<User>("POST", "/api/users", { body, doing: "create your account" });
    if (!r.ok) setProblem(r.problem);
    else if (await logIn(body.email, body.password)) setMessage(`Welcome, ${r.data.name}! Your account is ready.`);
    setBusy(false);
  }

  async function onLogin(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    setBusy(true);
    setProblem(null);
    setMessage("");
    if (await logIn(field(form, "email"), field(form, "password"))) setMessage("Welcome back.");
    setBusy(false);
  }

  if (account) {
    return (
      <section id="account-page">
        <h2>Your account</h2>
        {message && (
          <p className="success" role="status">
            {message}
          </p>
        )}
        <p id="whoami">
          Logged in as <strong>{account.user.email}</strong> ({account.user.name})
        </p>
        <p className="hint">
          Your session is a JWT signed by the user service (RS256); the frontend keeps it in an HttpOnly cookie.
        </p>
        <button type="button" className="secondary" onClick={() => void onLogout()}>
          Log out
        </button>
      </section>
    );
  }

  return (
    <section id="account-page">
      {problem && <Notice problem={problem} />}
      {message && <p role="status">{message}</p>}
      <div className="forms">
        <form id="signup-form" onSubmit={(e) => void onSignup(e)}>
          <h2>Create an account</h2>
          <label>
            Name <input name="name" required maxLength={100} autoComplete="name" />
          </label>
          <label>
            Email <input name="email" type="email" required maxLength={254} autoComplete="email" />
          </label>
          <label>
            Password{" "}
            <input name="password" type="password" required minLength={8} maxLength={128} autoComplete="new-password" />
          </label>
          <button type="submit" disabled={busy}>
            Sign up
          </button>
        </form>
        <form id="login-form" onSubmit={(e) => void onLogin(e)}>
          <h2>Log in</h2>
          <label>
            Email <input name="email" type="email" required maxLength={254} autoComplete="username" />
          </label>
          <label>
            Password <input name="password" type="password" required maxLength={128} autoComplete="current-password" />
          </label>
          <button type="submit" disabled={busy}>
            Log in
          </button>
        </form>
      </div>
    </section>
  );
}
