// Money is int64 minor units of the deployment's currency (bigint here, never a float):
// formatted with the currency's own number of minor digits, parsed back exactly.

export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

export function formatMoney(minor: bigint, currency: string): string {
  const digits = minorDigits(currency);
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const scale = 10n ** BigInt(digits);
  const decimal = `${negative ? "-" : ""}${abs / scale}${digits > 0 ? "." + (abs % scale).toString().padStart(digits, "0") : ""}`;
  try {
    // A decimal string is formatted exactly (Intl.NumberFormat v3), with no float rounding.
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits });
    return format.format(decimal as unknown as number);
  } catch {
    return `${decimal} ${currency}`;
  }
}

/** "12.5" -> 1250n (USD); null when not a non-negative amount with at most the currency's digits. */
export function parseMoney(input: string, currency: string): bigint | null {
  const digits = minorDigits(currency);
  const text = input.trim().replace(/[\s,]/g, "");
  const match = /^(\d+)(?:\.(\d*))?$/.exec(text);
  if (!match) return null;
  const fraction = match[2] ?? "";
  if (fraction.length > digits) return null;
  return BigInt(match[1]) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, "0") || "0");
}

export function formatBps(bps: number): string {
  return `${(bps / 100).toLocaleString(undefined, { maximumFractionDigits: 2 })} %`;
}
