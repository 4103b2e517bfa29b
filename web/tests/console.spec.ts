// The console in real headless Chromium against the local stack: the affiliate's flows, the
// real event path (RabbitMQ -> bridge -> SQS -> functions) feeding what it shows, a
// double-clicked withdrawal paying once, expired sessions, and the admin view.

import { expect, test, type Page } from "@playwright/test";
import { accessibility, adminToken, cli, cspViolations, screenshot, signIn, token, unique, watchCsp } from "./stack";

// Every test runs under the console's CSP as CloudFront serves it (the local server sends the
// template's headers): the page must report no violation.
test.beforeEach(async ({ page }) => watchCsp(page));
test.afterEach(async ({ page }) => expect(await cspViolations(page), "CSP violations").toEqual([]));

test("the console is served with its security headers: CSP (API alone, frame-ancestors), HSTS, no referrer", async ({ page }) => {
  const response = await page.request.get(process.env.CONSOLE_URL as string);
  const csp = response.headers()["content-security-policy"] ?? "";
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("frame-ancestors 'self'");
  expect(csp).toContain(`connect-src 'self' ${new URL(process.env.MARKET_API_URL as string).origin}`);
  expect(response.headers()["strict-transport-security"]).toContain("max-age=");
  expect(response.headers()["referrer-policy"]).toBe("no-referrer");
  expect(response.headers()["x-frame-options"], "frame-ancestors decides, so a host application can frame it").toBeUndefined();
  expect(await response.text(), "the deploy's second CSP names the API alone").toContain(`connect-src 'self' ${new URL(process.env.MARKET_API_URL as string).origin}`);
  // The page enforces it, and the watcher sees it: a request elsewhere is refused and reported.
  await page.goto(process.env.CONSOLE_URL as string);
  await page.evaluate(() => fetch("https://example.invalid/steal").catch(() => undefined));
  // (Reported once per policy that refuses it: the header's and index.html's.)
  await expect.poll(async () => (await cspViolations(page)).filter((v) => v.startsWith("connect-src blocked https://example.invalid/steal")).length).toBe(2);
  await page.evaluate(() => ((window as unknown as { __cspViolations: string[] }).__cspViolations.length = 0));
});


/** Clicks Refresh until `check` passes (rewards arrive asynchronously). */
async function refreshUntil(page: Page, check: () => Promise<void>): Promise<void> {
  await expect(async () => {
    await page.getByRole("button", { name: "Refresh" }).click();
    await check();
  }).toPass({ timeout: 60_000, intervals: [500, 1000] });
}

test("an affiliate manages codes, earns through the event path, and withdraws once despite a double click", async ({ page, context }) => {
  const user = unique("web");
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await signIn(page, token(user));
  await expect(page.getByRole("heading", { name: "Your programme" })).toBeVisible();
  expect(page.url(), "the token leaves the address bar").not.toContain("token=");
  await expect(page.locator('[data-stat="available"]')).toHaveText("$0.00");
  await expect(page.getByRole("button", { name: "Admin" }), "no admin view for a user").toHaveCount(0);

  // Codes up to the limit (5 in the test configuration), then the limit message.
  const create = page.getByRole("button", { name: "Create a code" });
  for (let n = 1; n <= 5; n++) {
    await create.click();
    await expect(page.locator("tr[data-code]")).toHaveCount(n);
  }
  await expect(page.getByText("You have reached the limit of 5 active codes")).toBeVisible();
  await expect(create).toBeDisabled();
  const codes = await page.locator("tr[data-code]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-code") ?? ""));

  // Copy a share link: the configured signup URL with the code.
  await page.getByRole("button", { name: `Copy link for ${codes[0]}` }).click();
  await expect(page.getByText(`Share link for ${codes[0]} copied.`)).toBeVisible();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(new URL(copied).searchParams.get("invite")).toBe(codes[0]);
  expect(new URL(copied).pathname).toBe("/signup");
  await page.getByRole("button", { name: `Copy code ${codes[1]}` }).click();
  await expect(page.getByText(`Code ${codes[1]} copied.`)).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(codes[1]);

  // Delete one, confirming.
  page.once("dialog", (d) => void d.accept());
  await page.getByRole("button", { name: `Delete ${codes[4]}` }).click();
  await expect(page.locator("tr[data-code]")).toHaveCount(4);
  await expect(page.getByText("1 of 5 code slots free.")).toBeVisible();
  await expect(create).toBeEnabled();
  expect(await accessibility(page)).toEqual([]);
  await screenshot(page, "affiliate-codes");

  // A referred user registers with a code and pays: 10 % of $250.00 = $25.00, through RabbitMQ.
  const buyer = unique("buyer");
  cli("publish-registered", buyer, "--code", codes[0]);
  cli("publish-order", buyer, "25000");
  await refreshUntil(page, async () => {
    await expect(page.locator('[data-stat="available"]')).toHaveText("$25.00", { timeout: 1000 });
  });
  await expect(page.locator('[data-stat="invited"]')).toHaveText("1");
  await expect(page.locator('tr[data-kind="reward"]')).toHaveCount(1);
  await expect(page.locator('tr[data-kind="reward"]')).toContainText("$25.00");

  // The form checks the amount before sending.
  const amount = page.getByLabel("Amount (USD)");
  const withdraw = page.getByRole("button", { name: "Withdraw to my balance" });
  await amount.fill("0.05");
  await withdraw.click();
  await expect(page.getByText("The minimum withdrawal is $0.10.")).toBeVisible();
  await amount.fill("30");
  await withdraw.click();
  await expect(page.getByText("You can withdraw at most $25.00.")).toBeVisible();

  // A double click sends one withdrawal.
  await amount.fill("10.50");
  await withdraw.dblclick();
  await expect(page.getByText(/Withdrew \$10\.50 to your balance/)).toBeVisible();
  await expect(page.locator('[data-stat="available"]')).toHaveText("$14.50");
  await expect(page.locator('tr[data-kind="withdrawal"]')).toHaveCount(1);
  const withdrawals = () => JSON.stringify(JSON.parse(cli("--json", "history", user))).match(/"withdrawal"/g)?.length ?? 0;
  expect(withdrawals(), "one withdrawal on the server").toBe(1);

  // A lost answer: the request reaches the API and is applied, the browser never sees the
  // response. Retrying the same amount reuses the key: the API replays, nothing is paid twice.
  let lose = true;
  await page.route("**/WithdrawAffiliateReward", async (route) => {
    if (!lose) return route.continue();
    lose = false;
    await route.fetch();
    await route.abort("failed");
  });
  await amount.fill("1.00");
  await withdraw.click();
  await expect(page.getByText("The service could not be reached. Try again: a repeated request is safe.")).toBeVisible();
  await withdraw.click();
  await expect(page.getByText(/This withdrawal was already made \(\$1\.00/)).toBeVisible();
  await expect(page.locator('[data-stat="available"]')).toHaveText("$13.50");
  expect(withdrawals(), "the retry was not paid again").toBe(2);
  expect(await accessibility(page)).toEqual([]);
  await screenshot(page, "affiliate-withdrawn");
});

test("an expired or rejected token leads to 'sign in again'", async ({ page }) => {
  const user = unique("web");
  await signIn(page, token(user, { exp: Math.floor(Date.now() / 1000) - 120 }));
  await expect(page.getByText("Your session has ended. Sign in again.")).toBeVisible();
  await screenshot(page, "signed-out");

  // A token the console cannot judge (bad signature) is rejected by the API: same outcome.
  const forged = token(user).replace(/\.[^.]+$/, ".c2lnbmF0dXJl");
  await signIn(page, forged);
  await expect(page.getByText("Your session has ended. Sign in again.")).toBeVisible();
  expect(await accessibility(page)).toEqual([]);
});

/** An affiliate with a code and a referred user registered through the event path. */
function referredAffiliate(): { user: string; buyer: string } {
  const user = unique("web");
  const code = cli("--json", "create-code", user).match(/"code"\s*:\s*"([^"]+)"/)?.[1];
  expect(code).toBeTruthy();
  const buyer = unique("buyer");
  cli("publish-registered", buyer, "--code", code as string);
  return { user, buyer };
}

/** The admin view, signed in as a new administrator. */
async function asAdmin(page: Page): Promise<void> {
  await signIn(page, adminToken(unique("admin")));
  await page.getByRole("button", { name: "Admin" }).click();
}

test("an admin changes a user's rate and the next order uses it", async ({ page, browser }) => {
  const { user, buyer } = referredAffiliate();
  await asAdmin(page);
  await expect(page.getByRole("heading", { name: "Market configuration" })).toBeVisible();
  await expect(page.getByLabel("Currency (ISO 4217)")).toHaveValue("USD");
  await expect(page.getByLabel(/Publish lifecycle events/)).toBeChecked();
  await page.getByLabel("User id").fill(user);
  await page.getByRole("button", { name: "Look up" }).click();
  await expect(page.getByRole("heading", { name: `User ${user}` })).toBeVisible();

  // The API's validation message for an out-of-range rate, then a valid one.
  const rate = page.getByLabel(/Commission \(basis points/);
  await rate.fill("20000");
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByText("commission_bps must be 0 to 10000")).toBeVisible();
  await rate.fill("2500");
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByText("Policy saved.")).toBeVisible();
  await expect(page.getByText(/Effective: rate 25 %/)).toBeVisible();
  await expect(page.getByRole("table", { name: /Audit trail/ })).toContainText("policy");
  expect(await accessibility(page)).toEqual([]);
  await screenshot(page, "admin-user");

  // The configuration form shows the API's validation message (nothing is changed).
  await page.getByLabel("Holding period (days)").fill("9999");
  await page.getByRole("button", { name: "Save configuration" }).click();
  await expect(page.getByText("holding_period_days must be 0 to 365")).toBeVisible();

  // The next order pays 25 %: $100.00 -> $25.00.
  cli("publish-order", buyer, "10000");
  const affiliate = await browser.newPage();
  await signIn(affiliate, token(user));
  await refreshUntil(affiliate, async () => {
    await expect(affiliate.locator('tr[data-kind="reward"]')).toContainText("25 % of $100.00", { timeout: 1000 });
  });
  await expect(affiliate.locator('[data-stat="rate"]')).toHaveText("25 %");
  await affiliate.close();
});

test("a non-admin never sees the admin view, and the API refuses admin calls", async ({ page }) => {
  await signIn(page, token(unique("web"), { scope: "openid" }));
  await expect(page.getByRole("heading", { name: "Your programme" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Admin" })).toHaveCount(0);
  await expect(page.getByRole("heading", { name: "Market configuration" })).toHaveCount(0);

  // Hiding is not the protection: the API refuses the admin call (PERMISSION_DENIED = 7).
  const response = await fetch(`${process.env.MARKET_API_URL}/helium.market.v1.MarketAdminService/GetMarketConfig`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${token(unique("web"))}` },
    body: new Uint8Array([0, 0, 0, 0, 0]),
  });
  const trailer = response.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(Buffer.from(await response.arrayBuffer()).toString("latin1"))?.[1];
  expect(trailer).toBe("7");
});

test("history pages through a long record, newest first", async ({ page }) => {
  const user = unique("web");
  // 12 entries: credit adjustments by an operator (AdjustBalance), each its own history line.
  for (let n = 1; n <= 12; n++) cli("adjust", user, String(n * 100), "--reason", `goodwill ${n}`, "--key", `${user}-${n}`);
  await signIn(page, token(user));
  const rows = page.locator("tr[data-kind]");
  await expect(rows).toHaveCount(10);
  await expect(rows.first()).toContainText("goodwill 12");
  await expect(page.getByRole("button", { name: "Newer" })).toBeDisabled();
  await page.getByRole("button", { name: "Older" }).click();
  await expect(page.getByRole("table", { name: "History, page 2" })).toBeVisible();
  await expect(rows).toHaveCount(2);
  await expect(rows.last()).toContainText("goodwill 1");
  await expect(page.getByRole("button", { name: "Older" })).toBeDisabled();
  await page.getByRole("button", { name: "Newer" }).click();
  await expect(page.getByRole("table", { name: "History, page 1" })).toBeVisible();
  await expect(page.locator('[data-stat="available"]')).toHaveText("$78.00");
});

test("the host application can hand over the token by postMessage", async ({ page }) => {
  const user = unique("web");
  await page.goto(process.env.CONSOLE_URL as string);
  await expect(page.getByText("You are not signed in. Sign in again.")).toBeVisible();
  // The local config.json names the console's own origin as the host (in AWS: the platform's).
  const t = token(user);
  await page.evaluate((t) => window.postMessage({ type: "helium-market:token", token: t }, window.location.origin), t);
  await expect(page.getByText(`Signed in as ${user}`)).toBeVisible();
  await expect(page.getByRole("heading", { name: "Your programme" })).toBeVisible();
  // A message of another shape or with another type is ignored.
  await page.evaluate(() => window.postMessage({ type: "other", token: "x" }, window.location.origin));
  await expect(page.getByText(`Signed in as ${user}`)).toBeVisible();
});

test("an admin defines a reward group and moves an affiliate into it; the affiliate sees its rules and the rule that paid", async ({ page, browser }) => {
  const { user, buyer } = referredAffiliate();
  const group = unique("grp");
  await asAdmin(page);
  await expect(page.getByRole("heading", { name: "Reward groups" })).toBeVisible();
  await expect(page.locator('tr[data-group="default"]'), "the default group, as the configuration defines it").toContainText("10 %");
  // Invalid rules are refused with the API's message; valid ones are saved as version 1.
  await page.getByLabel(/Group name/).fill(group);
  await page.getByLabel("Rules (JSON)").fill(JSON.stringify({ payout: { flatAmount: "0" }, triggerLimit: { unlimited: true } }));
  await page.getByRole("button", { name: "Save group" }).click();
  await expect(page.getByText("payout: a flat reward must be positive")).toBeVisible();
  await page.getByLabel("Rules (JSON)").fill(JSON.stringify({ payout: { flatAmount: "500" }, triggerLimit: { unlimited: true }, bounty: { amount: "200", on: "BOUNTY_TRIGGER_FIRST_PAYMENT" } }));
  await page.getByRole("button", { name: "Save group" }).click();
  await expect(page.getByText(`Saved ${group}, version 1.`)).toBeVisible();
  await expect(page.locator(`tr[data-group="${group}"]`)).toContainText("sign-up bounty $2.00");
  expect(await accessibility(page)).toEqual([]);
  await screenshot(page, "admin-groups");

  // The affiliate is moved into the group from their policy.
  await page.getByLabel("User id").fill(user);
  await page.getByRole("button", { name: "Look up" }).click();
  await page.getByLabel("Reward group (blank = default)").fill(group);
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByText("Policy saved.")).toBeVisible();
  await expect(page.getByLabel("Reward group (blank = default)")).toHaveValue(group);

  // The referred user's first order pays the flat $5.00 and the $2.00 bounty.
  cli("publish-order", buyer, "10000");
  const affiliate = await browser.newPage();
  await signIn(affiliate, token(user));
  await refreshUntil(affiliate, async () => {
    await expect(affiliate.locator('tr[data-kind="reward"]')).toContainText(`group ${group} v1 · sign-up bounty`, { timeout: 1000 });
  });
  await expect(affiliate.locator('tr[data-kind="reward"]')).toContainText("$7.00");
  await expect(affiliate.locator('[data-stat="group"]')).toHaveText(`${group} (version 1)`);
  await expect(affiliate.locator('[data-stat="rate"]'), "the group's payout, not the market's rate").toHaveText("$5.00 flat");
  await expect(affiliate.getByRole("list", { name: "What your programme pays" })).toContainText("$5.00 flat of every rewarded order");
  expect(await accessibility(affiliate)).toEqual([]);
  await screenshot(affiliate, "affiliate-group");
  await affiliate.close();
});
