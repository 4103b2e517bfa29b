// The affiliate's own programme: stats, invite codes, withdrawal and history.

import type { Api, Problem } from "./api";
import { problem } from "./api";
import type { ConsoleConfig } from "./config";
import { field, h, replace, status, when } from "./dom";
import { formatBps, formatMoney, parseMoney } from "./money";
import { pagedTable } from "./paged";
import { payoutText, rulesText, tierText } from "./rules";
import type { GetAffiliateStatsResponse, HistoryEntry, InviteCode } from "./gen/helium/market/v1/market_pb";
import { RewardStatus } from "./gen/helium/market/v1/market_pb";

export interface Ctx {
  api: Api;
  config: ConsoleConfig;
  /** A failure that concerns the whole session (sign in again) is handled there. */
  fail: (p: Problem) => void;
}

const HISTORY_PAGE = 10;

export function affiliateView(ctx: Ctx): HTMLElement {
  const statsBox = h("div", { "aria-live": "polite" }, status("info", "Loading…"));
  const codesBox = h("div");
  const withdrawBox = h("div");
  const historyBox = h("div");
  let overview: GetAffiliateStatsResponse | null = null;

  /** Reports a failure in `where`; session-wide ones go to the shell. */
  const report = (where: HTMLElement, err: unknown): Problem => {
    const p = problem(err);
    if (p.signIn) ctx.fail(p);
    else where.prepend(status("error", p.text));
    return p;
  };

  async function load(): Promise<void> {
    try {
      overview = await ctx.api.market.getAffiliateStats({});
    } catch (err) {
      replace(statsBox);
      report(statsBox, err);
      return;
    }
    renderStats();
    renderCodes();
    renderWithdraw();
  }

  const currency = () => overview?.stats?.currency || "USD";
  const money = (v: bigint) => formatMoney(v, currency());

  function renderStats(): void {
    const s = overview?.stats;
    const p = overview?.policy;
    if (!s || !p) return;
    const limit =
      p.triggerLimit.case === "triggerLimitCount"
        ? `first ${p.triggerLimit.value} order${p.triggerLimit.value === 1 ? "" : "s"} of each referred user`
        : "every order of each referred user";
    const row = (label: string, value: string, id: string) => [h("dt", {}, label), h("dd", { "data-stat": id }, value)];
    replace(
      statsBox,
      h(
        "dl",
        { class: "stats" },
        ...row("Pending", money(s.pending) + (s.nextReleaseAt ? ` (next release ${when(s.nextReleaseAt)})` : ""), "pending"),
        ...row("Available", money(s.available), "available"),
        ...(s.held ? row("Held for review", money(s.held), "held") : []),
        ...row("Withdrawn", money(s.withdrawnTotal), "withdrawn"),
        ...row("Total earned", money(s.totalEarned), "total"),
        ...row("Invited users", s.invitedCount.toString(), "invited"),
        ...row("Rewarded orders", s.rewardedOrders.toString(), "orders"),
        // Your own rate wins over your group's payout; otherwise the group's base payout.
        ...row("Your rate", overview?.group?.group && overview.group.ownCommissionBps === undefined ? payoutText(overview.group.group.rules?.payout, currency()) : formatBps(p.commissionBps), "rate"),
        ...row("Paid on", limit, "limit"),
        ...(overview?.group?.group ? row("Reward group", `${overview.group.group.name} (version ${overview.group.group.version})`, "group") : []),
        ...(overview?.group ? row("Your tier", tierText(overview.group, currency()), "tier") : []),
      ),
      overview?.group?.group
        ? h("ul", { "aria-label": "What your programme pays", "data-rules": "" }, ...rulesText(overview.group.group.rules, currency()).map((l) => h("li", {}, l)))
        : null,
      p.affiliateEnabled ? null : status("info", "Your affiliate programme is paused: new referrals earn nothing."),
    );
  }

  // ------------------------------------------------------------------ invite codes
  function shareLink(code: string): string {
    const url = new URL(ctx.config.signupUrl || window.location.origin);
    url.searchParams.set("invite", code);
    return url.toString();
  }

  function renderCodes(): void {
    const codes = overview?.codes ?? [];
    const max = overview?.policy?.maxActiveCodes ?? 0;
    const free = Math.max(0, max - codes.length);
    const note = h("div", { "aria-live": "polite" });
    const create = h("button", { type: "button", disabled: free === 0 }, "Create a code");
    create.addEventListener("click", async () => {
      create.disabled = true;
      try {
        // A fresh key per click; a retry of this click after a timeout reuses it.
        await ctx.api.market.createInviteCode({ idempotencyKey: crypto.randomUUID() });
        await load();
      } catch (err) {
        const p = report(note, err);
        if (p.code !== null && /limit/i.test(p.text)) replace(note, limitMessage(max));
        create.disabled = false;
      }
    });
    const rows = codes.map((c) => codeRow(c, note));
    replace(
      codesBox,
      h("p", { "data-slots": String(free) }, `${free} of ${max} code slot${max === 1 ? "" : "s"} free.`),
      free === 0 ? limitMessage(max) : null,
      create,
      note,
      codes.length
        ? h(
            "table",
            {},
            h("caption", {}, "Your active invite codes"),
            h("thead", {}, h("tr", {}, ...["Code", "Created", "Expires", "Sign-ups", "Share", "Delete"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, ...rows),
          )
        : h("p", {}, "You have no active codes yet."),
    );
  }

  function limitMessage(max: number): HTMLElement {
    return status("info", `You have reached the limit of ${max} active code${max === 1 ? "" : "s"}. Delete one to create another.`);
  }

  function codeRow(c: InviteCode, note: HTMLElement): HTMLElement {
    const link = shareLink(c.code);
    // The accessible name starts with the visible text (axe: label-content-name-mismatch).
    const copier = (label: string, name: string, text: string, done: string) => {
      const button = h("button", { type: "button", "aria-label": name }, label);
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(text);
          replace(note, status("ok", done));
        } catch {
          // No clipboard permission: show the text to copy by hand.
          replace(note, status("info", `Copy this: ${text}`));
        }
      });
      return button;
    };
    const copyCode = copier("Copy code", `Copy code ${c.code}`, c.code, `Code ${c.code} copied.`);
    const copy = copier("Copy link", `Copy link for ${c.code}`, link, `Share link for ${c.code} copied.`);
    const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${c.code}` }, "Delete");
    del.addEventListener("click", async () => {
      if (!window.confirm(`Delete invite code ${c.code}? People who have not signed up with it yet can no longer use it.`)) return;
      del.disabled = true;
      try {
        await ctx.api.market.deleteInviteCode({ code: c.code });
        await load();
        codesBox.append(status("ok", `Code ${c.code} deleted.`));
      } catch (err) {
        report(note, err);
        del.disabled = false;
      }
    });
    return h(
      "tr",
      { "data-code": c.code },
      h("td", {}, h("code", {}, c.code)),
      h("td", {}, when(c.createdAt)),
      h("td", {}, c.expiresAt ? when(c.expiresAt) : "never"),
      h("td", {}, c.registrations.toString()),
      h("td", {}, copyCode, copy),
      h("td", {}, del),
    );
  }

  // ------------------------------------------------------------------ withdrawal
  // One idempotency key per submitted withdrawal: kept while the same amount is retried after
  // a failure that may have reached the server, so a retry cannot pay twice.
  let pending: { key: string; amount: bigint } | null = null;

  function renderWithdraw(): void {
    const s = overview?.stats;
    if (!s) return;
    const min = overview?.minWithdrawAmount ?? 0n;
    const input = h("input", { type: "text", inputmode: "decimal", autocomplete: "off", name: "amount" });
    const [wrap] = field(`Amount (${currency()})`, input, `Minimum ${money(min)}; available ${money(s.available)}.`);
    const submit = h("button", { type: "submit" }, "Withdraw to my balance");
    const out = h("div", { "aria-live": "polite" });
    const form = h("form", { novalidate: true }, wrap, submit, out);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submit.disabled) return; // a double click while the first is in flight
      const amount = parseMoney(input.value, currency());
      input.removeAttribute("aria-invalid");
      const invalid = (text: string) => {
        input.setAttribute("aria-invalid", "true");
        replace(out, status("error", text));
      };
      if (amount === null || amount <= 0n) return invalid("Enter an amount, e.g. 12.50.");
      if (amount < min) return invalid(`The minimum withdrawal is ${money(min)}.`);
      if (amount > (overview?.stats?.available ?? 0n)) return invalid(`You can withdraw at most ${money(overview?.stats?.available ?? 0n)}.`);
      if (!pending || pending.amount !== amount) pending = { key: crypto.randomUUID(), amount };
      submit.disabled = true;
      replace(out, status("info", "Sending…"));
      try {
        const r = await ctx.api.market.withdrawAffiliateReward({ amount, idempotencyKey: pending.key });
        pending = null;
        input.value = "";
        await load();
        withdrawBox.querySelector("[aria-live]")?.replaceChildren(
          status(
            "ok",
            r.replayed
              ? `This withdrawal was already made (${money(r.amount)}, ${r.withdrawalId}); it was not paid again.`
              : `Withdrew ${money(r.amount)} to your balance (${r.withdrawalId}). Available now: ${money(r.availableAfter)}.`,
          ),
        );
        await history.reload();
      } catch (err) {
        const p = problem(err);
        if (!p.retry) pending = null; // a definite answer: a new submission is a new withdrawal
        replace(out);
        report(out, err);
        submit.disabled = false;
      }
    });
    replace(withdrawBox, form);
  }

  // ------------------------------------------------------------------ history
  const history = pagedTable(
    historyBox,
    async (token) => {
      const r = await ctx.api.market.listRewardHistory({ pageSize: HISTORY_PAGE, pageToken: token });
      return { rows: r.entries.map(historyRow), next: r.nextPageToken };
    },
    {
      caption: "History",
      headers: ["When", "What", "Amount", "Status"],
      empty: "Nothing yet: rewards appear here when people you invited pay for orders.",
      fail: (err) => void report(historyBox, err),
    },
  );

  function historyRow(e: HistoryEntry): HTMLElement {
    const row = (at: string, what: string, amount: string, state: string, kind: string) =>
      h("tr", { "data-kind": kind }, h("td", {}, at), h("td", {}, what), h("td", { class: "num" }, amount), h("td", {}, state));
    switch (e.entry.case) {
      case "reward": {
        const r = e.entry.value;
        const state =
          r.status === RewardStatus.PENDING
            ? `pending until ${when(r.pendingUntil)}`
            : r.status === RewardStatus.AVAILABLE
              ? "available"
              : r.status === RewardStatus.PARTIALLY_REVERSED
                ? `partly refunded (${money(r.refundedAmount)})`
                : r.status === RewardStatus.REVERSED
                  ? "refunded"
                  : r.status === RewardStatus.HELD_FOR_REVIEW
                    ? "held for review"
                    : "";
        // The rule that paid it, when a reward group decided it ("group vip v3 · tier 2").
        const how = r.rule ? ` — ${r.rule}` : "";
        const basis = r.commissionBps || !r.rule ? `${formatBps(r.commissionBps)} of ${money(r.orderAmount)}` : `on ${money(r.orderAmount)}`;
        return row(when(r.earnedAt), `Reward for order ${r.orderId} (${basis})${how}`, money(r.amount), state, "reward");
      }
      case "withdrawal": {
        const w = e.entry.value;
        return row(when(w.at), `Withdrawal ${w.withdrawalId}`, money(-w.amount), "paid to your balance", "withdrawal");
      }
      case "reversal": {
        const r = e.entry.value;
        return row(when(r.at), `${r.cause === "chargeback" ? "Chargeback" : "Refund"} of order ${r.orderId}`, money(-r.amount), `taken from ${r.takenFrom}`, "reversal");
      }
      case "adjustment": {
        const a = e.entry.value;
        return row(when(a.at), `Adjustment: ${a.reason}`, money(a.amount), "", "adjustment");
      }
      default:
        return row("", "", "", "", "unknown");
    }
  }

  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", () => {
    void load();
    void history.reload();
  });

  void load();
  void history.reload();
  return h(
    "div",
    { class: "view" },
    h("section", { "aria-labelledby": "h-stats" }, h("h2", { id: "h-stats" }, "Your programme"), refresh, statsBox),
    h("section", { "aria-labelledby": "h-codes" }, h("h2", { id: "h-codes" }, "Invite codes"), codesBox),
    h("section", { "aria-labelledby": "h-withdraw" }, h("h2", { id: "h-withdraw" }, "Withdraw"), withdrawBox),
    h("section", { "aria-labelledby": "h-history" }, h("h2", { id: "h-history" }, "History"), historyBox),
  );
}
