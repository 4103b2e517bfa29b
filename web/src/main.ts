// The console's shell: configuration, the token, and the two views (the admin view only for a
// token with the admin claim).

import "./style.css";
import { affiliateView } from "./affiliate";
import { adminView } from "./admin";
import { createApi, type Problem } from "./api";
import { expired, forget, listenForTokens, sessionOf, takeToken, type Session } from "./auth";
import { loadConfig, type ConsoleConfig } from "./config";
import { h, replace, status } from "./dom";

const root = document.getElementById("app") as HTMLElement;
let session: Session | null = null;

function signedOut(config: ConsoleConfig, why: string): void {
  session = null;
  forget();
  replace(
    root,
    h(
      "main",
      { class: "signin" },
      h("h1", {}, "Helium Market"),
      status("error", why),
      config.signInUrl ? h("a", { href: config.signInUrl, class: "button" }, "Sign in again") : h("p", {}, "Open the console from the platform again to sign in."),
    ),
  );
}

function render(config: ConsoleConfig, view: "affiliate" | "admin"): void {
  if (!session) return signedOut(config, "You are not signed in. Sign in again.");
  if (expired(session)) return signedOut(config, "Your session has ended. Sign in again.");
  const api = createApi(config.apiUrl, () => session?.token ?? null);
  const fail = (p: Problem) => signedOut(config, p.text);
  const ctx = { api, config, fail };
  const tab = (name: "affiliate" | "admin", label: string) => {
    const b = h("button", { type: "button", "aria-current": view === name ? "page" : undefined }, label);
    b.addEventListener("click", () => render(config, name));
    return b;
  };
  const shown = view === "admin" && session.admin ? adminView(ctx) : affiliateView(ctx);
  replace(
    root,
    h(
      "header",
      {},
      h("h1", {}, "Helium Market"),
      h("nav", { "aria-label": "Views" }, tab("affiliate", "My programme"), session.admin ? tab("admin", "Admin") : null),
      h("p", { class: "who" }, `Signed in as ${session.user}`),
    ),
    h("main", {}, shown),
  );
}

async function start(): Promise<void> {
  let config: ConsoleConfig;
  try {
    config = await loadConfig();
  } catch {
    replace(root, h("main", {}, status("error", "The console is not configured (config.json). Ask the platform team.")));
    return;
  }
  const token = takeToken();
  session = token ? sessionOf(token, config) : null;
  listenForTokens(config, (t) => {
    session = sessionOf(t, config);
    render(config, "affiliate");
  });
  render(config, "affiliate");
}

void start();
