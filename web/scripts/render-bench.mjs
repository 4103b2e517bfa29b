// The console's weight and speed, as a user's browser pays them: the bundle gzipped, and the
// time from navigation to the first meaningful render (the affiliate's stats, fetched from
// the API) in Chromium against the running local stack. Median of RUNS fresh browser contexts.
//
//   CONSOLE_URL=... AUTH_*=... node scripts/render-bench.mjs [runs]

import { createHmac } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "@playwright/test";

const dist = new URL("../dist/", import.meta.url).pathname;
const files = (dir) => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
let raw = 0, gz = 0;
for (const f of files(dist).filter((f) => /\.(js|css|html)$/.test(f))) {
  const body = readFileSync(f);
  raw += body.length;
  gz += gzipSync(body, { level: 9 }).length;
}
console.log(`console bundle  ${(raw / 1024).toFixed(1)} KiB, gzipped ${(gz / 1024).toFixed(1)} KiB (js+css+html; budget 150 KiB)`);

const env = (k) => process.env[k] ?? (() => { throw new Error(`${k} is not set: run against a stack`); })();
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: `bench-${now}`, iss: env("AUTH_ISSUER"), aud: env("AUTH_AUDIENCE"), iat: now, exp: now + 600 })}`;
const token = `${unsigned}.${createHmac("sha256", env("AUTH_HS256_SECRET")).update(unsigned).digest("base64url")}`;

const runs = Number(process.argv[2] ?? 10);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
const times = [];
for (let i = 0; i <= runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env("CONSOLE_URL")}#token=${token}`);
  await page.locator('[data-stat="available"]').waitFor();
  // Page time at the render (navigation start = 0): bundle load, config.json, the RPC.
  const [ms, rpc, boot] = await page.evaluate(() => {
    const rpc = performance.getEntriesByType("resource").find((e) => e.name.includes("GetAffiliateStats"));
    const nav = performance.getEntriesByType("navigation")[0];
    return [performance.now(), rpc ? rpc.duration : 0, nav ? nav.domContentLoadedEventEnd : 0];
  });
  if (i > 0) times.push({ ms, rpc, boot }); // the first run warms the functions
  await context.close();
}
await browser.close();
const pct = (key, p) => {
  const v = times.map((t) => t[key]).sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor((v.length * p) / 100))].toFixed(0);
};
console.log(`first meaningful render (stats shown)  median ${pct("ms", 50)} ms, p90 ${pct("ms", 90)} ms over ${runs} fresh contexts`);
console.log(`  of which: page loaded (DOMContentLoaded) ${pct("boot", 50)} ms, the GetAffiliateStats call ${pct("rpc", 50)} ms (medians)`);
