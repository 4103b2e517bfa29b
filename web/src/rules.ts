// Reward groups in words: what a group's rules pay (the affiliate's "your programme" and the
// admin's group list), from the API's RewardRules.

import type { AffiliateGroup, Payout, RewardRules, RuleCondition } from "./gen/helium/market/v1/market_pb";
import { CapInterval, OrderKind } from "./gen/helium/market/v1/market_pb";
import { formatBps, formatMoney } from "./money";

export function payoutText(p: Payout | undefined, currency: string): string {
  switch (p?.payout.case) {
    case "percentageBps":
      return formatBps(p.payout.value);
    case "flatAmount":
      return `${formatMoney(p.payout.value, currency)} flat`;
    default:
      return "—";
  }
}

const intervals: Record<number, string> = {
  [CapInterval.DAY]: "a day",
  [CapInterval.WEEK]: "a week",
  [CapInterval.MONTH]: "a month",
  [CapInterval.ALL_TIME]: "in all",
};

function conditionText(c: RuleCondition, currency: string): string {
  switch (c.condition.case) {
    case "productIn":
      return `product ${c.condition.value.products.join(" or ")}`;
    case "amountAtLeast":
      return `orders of ${formatMoney(c.condition.value, currency)} or more`;
    case "amountAtMost":
      return `orders up to ${formatMoney(c.condition.value, currency)}`;
    case "kind":
      return c.condition.value === OrderKind.RENEWAL ? "renewals" : "new subscriptions";
    case "payingReferralsAtLeast":
      return `${c.condition.value}+ paying referrals`;
    case "earnedRecentlyAtLeast":
      return `${formatMoney(c.condition.value, currency)}+ earned in the last 30 days`;
    default:
      return "?";
  }
}

/** One line per rule: the base payout, each modifier, duration, cap, bounty, levels. */
export function rulesText(r: RewardRules | undefined, currency: string): string[] {
  if (!r) return [];
  const lines = [`${payoutText(r.payout, currency)} of every rewarded order`];
  for (const m of r.modifiers) {
    lines.push(`${m.name}: ${payoutText(m.payout, currency)} for ${m.when.map((c) => conditionText(c, currency)).join(" and ")}`);
  }
  if (r.durationMonths !== undefined) {
    lines.push(r.durationMonths === 0 ? "only a referred user's first rewarded order" : `orders within ${r.durationMonths} month${r.durationMonths === 1 ? "" : "s"} of the referral`);
  }
  if (r.cap) lines.push(`at most ${formatMoney(r.cap.amount, currency)} per referred user ${intervals[r.cap.interval] ?? ""}`);
  if (r.bounty) lines.push(`sign-up bounty ${formatMoney(r.bounty.amount, currency)} when a referred user first pays`);
  if (r.levelBps.length) lines.push(`levels above: ${r.levelBps.map(formatBps).join(", ")}`);
  return lines;
}

/** "tier 2 (12 paying referrals; 38 more paying referrals for tier 3)". */
export function tierText(g: AffiliateGroup, currency: string): string {
  const current = g.currentTier || "no tier yet";
  const more: string[] = [];
  if (g.payingReferralsToNextTier > 0n) more.push(`${g.payingReferralsToNextTier} more paying referral${g.payingReferralsToNextTier === 1n ? "" : "s"}`);
  if (g.earnedToNextTier > 0n) more.push(`${formatMoney(g.earnedToNextTier, currency)} more earned in 30 days`);
  const next = g.nextTier ? `; ${more.join(" and ") || "reached at the next order"} for ${g.nextTier}` : "";
  const recent = g.earnedRecently > 0n ? `, ${formatMoney(g.earnedRecently, currency)} earned in the last 30 days` : "";
  return `${current} (${g.payingReferrals} paying referral${g.payingReferrals === 1n ? "" : "s"}${recent}${next})`;
}
