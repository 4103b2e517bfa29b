// The local stack as the tests reach it: the market CLI (tokens, RabbitMQ events, admin
// reads) and a JWT signer for tokens the CLI does not mint (expired ones).

import { execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Page } from "@playwright/test";

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run the console tests inside \`make test\``);
  return v;
};

export function cli(...args: string[]): string {
  return execFileSync(env("MARKET_CLI"), args, { encoding: "utf8", env: process.env }).trim();
}

export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString("base64url");

/** A token signed with the stack's key, with these claims over the usual ones. */
export function token(user: string, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const body = { sub: user, iss: env("AUTH_ISSUER"), aud: env("AUTH_AUDIENCE"), iat: now, exp: now + 600, ...claims };
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(body)}`;
  return `${unsigned}.${createHmac("sha256", env("AUTH_HS256_SECRET")).update(unsigned).digest("base64url")}`;
}

export const adminToken = (user: string) => token(user, { scope: "openid market:admin" });

/** Opens the console signed in with `t` (the fragment the host application would set). */
export async function signIn(page: Page, t: string): Promise<void> {
  await page.goto(`${env("CONSOLE_URL")}#token=${t}`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = join(process.env.CONSOLE_ARTIFACTS ?? "test-results", "screens");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** axe-core in the page: the serious and critical violations (should be none). */
export async function accessibility(page: Page): Promise<string[]> {
  // Evaluated through DevTools, not as a <script> tag: the console's CSP (script-src 'self')
  // refuses inline scripts, as it should.
  await page.evaluate(readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8"));
  const result = await page.evaluate(async () => {
    // @ts-expect-error axe is injected above
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v: { id: string; impact: string; help: string; nodes: unknown[] }) => ({ id: v.id, impact: v.impact, help: v.help, n: v.nodes.length }));
  });
  return result.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.n}×): ${v.help}`);
}

/** Records every CSP violation the page reports (installed before any of its scripts run,
 * through DevTools, so the CSP does not apply to it); read them with `cspViolations`. */
export async function watchCsp(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __cspViolations: string[] }).__cspViolations = seen;
    document.addEventListener("securitypolicyviolation", (e) => seen.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`));
  });
}

export async function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __cspViolations?: string[] }).__cspViolations ?? []).catch(() => []);
}
