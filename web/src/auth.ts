// The platform's bearer token, handed over by the host application in one of two ways:
//  - a fragment `#token=<jwt>` on the console's URL (never sent to a server), read once and
//    removed from the address bar and history;
//  - `window.postMessage({type: "helium-market:token", token}, consoleOrigin)` from the
//    configured `hostOrigin` (an opener or parent frame), e.g. when the token is refreshed.
// It is kept in memory and in sessionStorage (this tab only, so a reload stays signed in);
// it is never logged and never put in a URL.

import type { ConsoleConfig } from "./config";

const KEY = "helium-market-token";

export interface Session {
  token: string;
  user: string;
  admin: boolean;
  /** Seconds since the epoch; 0 when the token has none. */
  expiresAt: number;
}

function decodeClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(base64), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const claims = JSON.parse(json);
    return typeof claims === "object" && claims !== null ? claims : null;
  } catch {
    return null;
  }
}

/** What the console shows and hides by; the API checks the token itself on every call. */
export function sessionOf(token: string, config: ConsoleConfig): Session | null {
  const claims = decodeClaims(token);
  if (!claims || typeof claims.sub !== "string") return null;
  const claim = claims[config.adminClaim];
  const values = Array.isArray(claim) ? claim.map(String) : typeof claim === "string" ? claim.split(" ") : [];
  const exp = typeof claims.exp === "number" ? claims.exp : 0;
  return { token, user: claims.sub, admin: values.includes(config.adminValue), expiresAt: exp };
}

export function expired(session: Session): boolean {
  return session.expiresAt > 0 && session.expiresAt * 1000 <= Date.now();
}

/** Takes a token from the fragment (and removes it), else the one this tab kept. */
export function takeToken(): string | null {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const fromFragment = params.get("token");
  if (fromFragment) {
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? "#" + rest : ""));
    sessionStorage.setItem(KEY, fromFragment);
    return fromFragment;
  }
  return sessionStorage.getItem(KEY);
}

export function forget(): void {
  sessionStorage.removeItem(KEY);
}

/** Calls `onToken` for each token the host application posts from its origin. */
export function listenForTokens(config: ConsoleConfig, onToken: (token: string) => void): void {
  if (!config.hostOrigin) return;
  window.addEventListener("message", (event: MessageEvent) => {
    if (event.origin !== config.hostOrigin) return;
    const data = event.data as { type?: unknown; token?: unknown } | null;
    if (data && data.type === "helium-market:token" && typeof data.token === "string") {
      sessionStorage.setItem(KEY, data.token);
      onToken(data.token);
    }
  });
}
