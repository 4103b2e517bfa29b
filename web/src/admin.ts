// The operator's view: a user's policy (edit), ledger and audit trail; the market
// configuration. Shown only for an administrator's token; the API enforces it regardless.

import type { Ctx } from "./affiliate";
import { problem } from "./api";
import { field, h, replace, status, when } from "./dom";
import { formatBps, formatMoney } from "./money";
import { pagedTable } from "./paged";
import type { AuditRecord, LedgerEntry, MarketConfig, UserPolicy } from "./gen/helium/market/v1/admin_pb";
import type { TriggerLimit } from "./gen/helium/market/v1/market_pb";
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import type { RewardGroup } from "./gen/helium/market/v1/market_pb";
import { RewardRulesSchema } from "./gen/helium/market/v1/market_pb";
import { rulesText } from "./rules";
import { MarketConfigSchema, PolicyOverridesSchema } from "./gen/helium/market/v1/admin_pb";
import { TriggerLimitSchema } from "./gen/helium/market/v1/market_pb";

const PAGE = 10;

function report(where: HTMLElement, ctx: Ctx, err: unknown): void {
  const p = problem(err);
  if (p.signIn) ctx.fail(p);
  else where.replaceChildren(status("error", p.text));
}

function input(attrs: Record<string, string>): HTMLInputElement {
  return h("input", { autocomplete: "off", ...attrs });
}

/** A blank field means "no override" (or "unchanged" in the config form). */
function optionalNumber(el: HTMLInputElement): number | undefined | null {
  const v = el.value.trim();
  if (v === "") return undefined;
  return /^\d+$/.test(v) ? Number(v) : null;
}

export function adminView(ctx: Ctx): HTMLElement {
  let currency = "USD";
  const userOut = h("div", { "aria-live": "polite" });
  const configBox = h("div");

  // ------------------------------------------------------------------ user lookup
  const userInput = input({ name: "user", spellcheck: "false" });
  const [userField] = field("User id", userInput);
  const lookup = h("form", { role: "search" }, userField, h("button", { type: "submit" }, "Look up"));
  lookup.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = userInput.value.trim();
    if (user) void showUser(user);
  });

  async function showUser(user: string): Promise<void> {
    replace(userOut, status("info", "Loading…"));
    let policy: UserPolicy;
    try {
      policy = await ctx.api.admin.getUserPolicy({ userId: user });
    } catch (err) {
      return report(userOut, ctx, err);
    }
    const ledger = h("div");
    const audit = h("div");
    replace(
      userOut,
      h("h3", {}, `User ${policy.userId}`),
      policyForm(policy),
      h("h3", {}, "Ledger"),
      ledger,
      h("h3", {}, "Audit trail"),
      audit,
    );
    const fail = (box: HTMLElement) => (err: unknown) => report(box, ctx, err);
    void pagedTable(ledger, async (token) => {
      const r = await ctx.api.admin.listLedger({ userId: user, pageSize: PAGE, pageToken: token });
      return { rows: r.entries.map(ledgerRow), next: r.nextPageToken };
    }, { caption: "Ledger", headers: ["When", "What", "Amount", "Status"], empty: "Nothing recorded.", fail: fail(ledger) }).reload();
    void pagedTable(audit, async (token) => {
      const r = await ctx.api.admin.listAuditTrail({ userId: user, pageSize: PAGE, pageToken: token });
      return { rows: r.records.map(auditRow), next: r.nextPageToken };
    }, { caption: "Audit trail", headers: ["When", "Action", "By", "Details"], empty: "Nothing recorded.", fail: fail(audit) }).reload();
  }

  function policyForm(p: UserPolicy): HTMLElement {
    const o = p.overrides;
    const e = p.effective;
    const limitText = (l: TriggerLimit | undefined) =>
      l?.limit.case === "count" ? String(l.limit.value) : l?.limit.case === "unlimited" ? "unlimited" : "";
    const rate = input({ name: "commission_bps", inputmode: "numeric", value: o?.commissionBps?.toString() ?? "" });
    const limit = input({ name: "trigger_limit", value: limitText(o?.triggerLimit) });
    const codes = input({ name: "max_active_codes", inputmode: "numeric", value: o?.maxActiveCodes?.toString() ?? "" });
    const enabled = h(
      "select",
      { name: "affiliate_enabled" },
      h("option", { value: "" }, "market default"),
      h("option", { value: "true" }, "enabled"),
      h("option", { value: "false" }, "disabled"),
    );
    enabled.value = o?.affiliateEnabled === undefined ? "" : String(o.affiliateEnabled);
    const group = input({ name: "group", spellcheck: "false", value: o?.group ?? "" });
    const effectiveLimit = e?.triggerLimit.case === "triggerLimitCount" ? `${e.triggerLimit.value} orders` : "unlimited";
    const out = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { novalidate: true, "aria-label": "Policy overrides" },
      h(
        "p",
        {},
        `Effective: rate ${formatBps(e?.commissionBps ?? 0)}, paid on ${effectiveLimit} per referred user, ` +
          `${e?.maxActiveCodes ?? 0} codes, ${e?.affiliateEnabled ? "enabled" : "disabled"}. ` +
          `Invited by ${p.inviter || "nobody"}; ${p.rewardsTriggered} rewarded orders; registered ${when(p.registeredAt)}.`,
      ),
      field("Commission (basis points, 0–10000; blank = market default)", rate)[0],
      field("Trigger limit (orders per referred user, or “unlimited”; blank = default)", limit)[0],
      field("Active code limit (blank = default)", codes)[0],
      field("Affiliate programme", enabled)[0],
      field("Reward group (blank = default)", group)[0],
      h("button", { type: "submit" }, "Save policy"),
      out,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const overrides = create(PolicyOverridesSchema, {});
      const rateV = optionalNumber(rate);
      const codesV = optionalNumber(codes);
      if (rateV === null || (rateV !== undefined && rateV > 10000)) return replace(out, status("error", "commission_bps must be 0 to 10000"));
      if (codesV === null) return replace(out, status("error", "max_active_codes must be a whole number"));
      const l = limit.value.trim().toLowerCase();
      if (l !== "" && l !== "unlimited" && !/^\d+$/.test(l)) return replace(out, status("error", "trigger_limit must be a count or unlimited"));
      overrides.commissionBps = rateV;
      overrides.maxActiveCodes = codesV;
      overrides.affiliateEnabled = enabled.value === "" ? undefined : enabled.value === "true";
      overrides.group = group.value.trim() || undefined;
      if (l) overrides.triggerLimit = create(TriggerLimitSchema, { limit: l === "unlimited" ? { case: "unlimited", value: true } : { case: "count", value: Number(l) } });
      try {
        const updated = await ctx.api.admin.updateUserPolicy({
          userId: p.userId,
          overrides,
          update: ["commission_bps", "trigger_limit", "max_active_codes", "affiliate_enabled", "group"],
        });
        // The whole user again: the audit trail now has the change.
        await showUser(updated.userId);
        userOut.querySelector("form[aria-label='Policy overrides'] [aria-live]")?.replaceChildren(status("ok", "Policy saved."));
      } catch (err) {
        report(out, ctx, err);
      }
    });
    return form;
  }

  const money = (v: bigint) => formatMoney(v, currency);
  function ledgerRow(e: LedgerEntry): HTMLElement {
    const row = (at: string, what: string, amount: string, state: string) =>
      h("tr", {}, h("td", {}, at), h("td", {}, what), h("td", { class: "num" }, amount), h("td", {}, state));
    switch (e.entry.case) {
      case "reward": {
        const r = e.entry.value;
        return row(when(r.at), `Reward: order ${r.orderId} of ${r.referredUserId} (${formatBps(r.commissionBps)} of ${money(r.orderAmount)})`, money(r.amount), ["", "pending", "available", "partly reversed", "reversed"][r.status] ?? "");
      }
      case "withdrawal":
        return row(when(e.entry.value.at), `Withdrawal ${e.entry.value.withdrawalId}`, money(-e.entry.value.amount), "");
      case "reversal":
        return row(when(e.entry.value.at), `Reversal (${e.entry.value.cause}) of order ${e.entry.value.orderId}`, money(-e.entry.value.amount), `from ${e.entry.value.takenFrom}`);
      case "adjustment":
        return row(when(e.entry.value.at), `Adjustment: ${e.entry.value.reason}`, money(e.entry.value.amount), "");
      default:
        return row("", "", "", "");
    }
  }

  function auditRow(r: AuditRecord): HTMLElement {
    return h("tr", {}, h("td", {}, when(r.at)), h("td", {}, r.action), h("td", {}, r.actor), h("td", {}, h("code", {}, r.detailsJson)));
  }

  // ------------------------------------------------------------------ market configuration
  async function showConfig(): Promise<void> {
    let c: MarketConfig;
    try {
      c = await ctx.api.admin.getMarketConfig({});
    } catch (err) {
      return report(configBox, ctx, err);
    }
    currency = c.currency || currency;
    replace(configBox, configForm(c));
  }

  function configForm(c: MarketConfig): HTMLElement {
    const num = (name: string, value: bigint | number) => input({ name, inputmode: "numeric", value: value.toString() });
    const enabled = h("input", { type: "checkbox", name: "enabled" });
    enabled.checked = c.enabled;
    const lifecycle = h("input", { type: "checkbox", name: "lifecycle_events" });
    lifecycle.checked = c.lifecycleEvents;
    const limit = c.defaultTriggerLimit?.limit;
    const fields = {
      default_commission_bps: num("default_commission_bps", c.defaultCommissionBps),
      default_trigger_limit: input({ name: "default_trigger_limit", value: limit?.case === "count" ? String(limit.value) : "unlimited" }),
      max_active_codes: num("max_active_codes", c.maxActiveCodes),
      min_withdraw_amount: num("min_withdraw_amount", c.minWithdrawAmount),
      currency: input({ name: "currency", value: c.currency }),
      code_expiry_days: num("code_expiry_days", c.codeExpiryDays),
      code_retention_days: num("code_retention_days", c.codeRetentionDays),
      holding_period_days: num("holding_period_days", c.holdingPeriodDays),
    };
    const labels: Record<keyof typeof fields, string> = {
      default_commission_bps: "Default commission (basis points)",
      default_trigger_limit: "Default trigger limit (orders, or “unlimited”)",
      max_active_codes: "Active codes per user",
      min_withdraw_amount: "Minimum withdrawal (minor units)",
      currency: "Currency (ISO 4217)",
      code_expiry_days: "Code expiry (days, 0 = never)",
      code_retention_days: "Deleted code retention (days)",
      holding_period_days: "Holding period (days)",
    };
    const out = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { novalidate: true, "aria-label": "Market configuration" },
      h("div", { class: "field" }, h("label", {}, enabled, " Market enabled")),
      h("div", { class: "field" }, h("label", {}, lifecycle, " Publish lifecycle events (earned, matured, reversed, approved, adjusted)")),
      ...Object.entries(fields).map(([k, el]) => field(labels[k as keyof typeof fields], el)[0]),
      h("button", { type: "submit" }, "Save configuration"),
      out,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const next = create(MarketConfigSchema, { enabled: enabled.checked, lifecycleEvents: lifecycle.checked, currency: fields.currency.value.trim().toUpperCase() });
      const update: string[] = [];
      if (enabled.checked !== c.enabled) update.push("enabled");
      if (lifecycle.checked !== c.lifecycleEvents) update.push("lifecycle_events");
      const whole = (k: keyof typeof fields): number | null => (/^\d+$/.test(fields[k].value.trim()) ? Number(fields[k].value.trim()) : null);
      for (const k of ["default_commission_bps", "max_active_codes", "code_expiry_days", "code_retention_days", "holding_period_days"] as const) {
        const v = whole(k);
        if (v === null) return replace(out, status("error", `${k} must be a whole number`));
        const camel = k.replace(/_(\w)/g, (_, x: string) => x.toUpperCase()) as "maxActiveCodes";
        if (v !== (c[camel] as number)) {
          (next as unknown as Record<string, number>)[camel] = v;
          update.push(k);
        }
      }
      const min = whole("min_withdraw_amount");
      if (min === null) return replace(out, status("error", "min_withdraw_amount must be a whole number of minor units"));
      if (BigInt(min) !== c.minWithdrawAmount) {
        next.minWithdrawAmount = BigInt(min);
        update.push("min_withdraw_amount");
      }
      if (next.currency !== c.currency) update.push("currency");
      const l = fields.default_trigger_limit.value.trim().toLowerCase();
      const before = limit?.case === "count" ? String(limit.value) : "unlimited";
      if (l !== before) {
        if (l !== "unlimited" && !/^\d+$/.test(l)) return replace(out, status("error", "default_trigger_limit must be a count or unlimited"));
        next.defaultTriggerLimit = create(TriggerLimitSchema, { limit: l === "unlimited" ? { case: "unlimited", value: true } : { case: "count", value: Number(l) } });
        update.push("default_trigger_limit");
      }
      if (!update.length) return replace(out, status("info", "Nothing changed."));
      try {
        const saved = await ctx.api.admin.updateMarketConfig({ config: next, update });
        currency = saved.currency || currency;
        const fresh = configForm(saved);
        form.replaceWith(fresh);
        fresh.querySelector("[aria-live]")?.replaceChildren(status("ok", `Saved: ${update.join(", ")}.`));
      } catch (err) {
        report(out, ctx, err);
      }
    });
    return form;
  }

  // ------------------------------------------------------------------ reward groups
  const groupsBox = h("div");
  async function showGroups(notice?: HTMLElement): Promise<void> {
    let groups: RewardGroup[];
    try {
      groups = (await ctx.api.admin.listRewardGroups({})).groups;
    } catch (err) {
      return report(groupsBox, ctx, err);
    }
    const rows = groups.map((g) =>
      h(
        "tr",
        { "data-group": g.name },
        h("td", {}, h("code", {}, g.name)),
        h("td", { class: "num" }, g.version.toString()),
        h("td", {}, h("ul", {}, ...rulesText(g.rules, currency).map((l) => h("li", {}, l)))),
      ),
    );
    replace(
      groupsBox,
      notice,
      h(
        "table",
        {},
        h("caption", {}, "Reward groups (version 0: the default group as the configuration defines it)"),
        h("thead", {}, h("tr", {}, ...["Group", "Version", "Pays"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...rows),
      ),
      groupForm(groups),
    );
  }

  /** Define a group or write its next version: the rules as JSON (the API's RewardRules). */
  function groupForm(groups: RewardGroup[]): HTMLElement {
    const name = input({ name: "group_name", spellcheck: "false" });
    const rules = h("textarea", { name: "group_rules", rows: 10, spellcheck: "false", "aria-describedby": "group-rules-hint" });
    const load = () => {
      const g = groups.find((x) => x.name === name.value.trim());
      if (g?.rules) rules.value = JSON.stringify(toJson(RewardRulesSchema, g.rules), null, 2);
    };
    name.addEventListener("change", load);
    const out = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { novalidate: true, "aria-label": "Reward group" },
      field("Group name (a-z, 0-9, - and _; an existing name loads its rules)", name)[0],
      h("div", { class: "field" }, h("label", { for: "group-rules" }, "Rules (JSON)"), rules, h("small", { id: "group-rules-hint" }, 'e.g. {"payout": {"percentageBps": 1000}, "triggerLimit": {"unlimited": true}, "cap": {"interval": "CAP_INTERVAL_MONTH", "amount": "5000"}}')),
      h("button", { type: "submit" }, "Save group"),
      out,
    );
    rules.id = "group-rules";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const groupName = name.value.trim();
      let parsed;
      try {
        parsed = fromJson(RewardRulesSchema, JSON.parse(rules.value));
      } catch (err) {
        return replace(out, status("error", `The rules are not valid JSON of RewardRules: ${(err as Error).message}`));
      }
      const current = groups.find((g) => g.name === groupName)?.version ?? 0n;
      try {
        const saved = await ctx.api.admin.putRewardGroup({ group: { name: groupName, rules: parsed }, expectedVersion: current });
        await showGroups(status("ok", `Saved ${saved.name}, version ${saved.version}.`));
      } catch (err) {
        report(out, ctx, err);
      }
    });
    return form;
  }

  void showConfig();
  void showGroups();
  return h(
    "div",
    { class: "view" },
    h("section", { "aria-labelledby": "h-user" }, h("h2", { id: "h-user" }, "Users"), lookup, userOut),
    h("section", { "aria-labelledby": "h-config" }, h("h2", { id: "h-config" }, "Market configuration"), configBox),
    h("section", { "aria-labelledby": "h-groups" }, h("h2", { id: "h-groups" }, "Reward groups"), groupsBox),
  );
}
