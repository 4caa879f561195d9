// Money arrives as integer micro-dollars; it is shown in dollars without floating-point sums
// (only the final division for display).

export function usd(micros: number): string {
  const dollars = micros / 1_000_000;
  const digits = Math.abs(dollars) < 1 && dollars !== 0 ? 4 : 2;
  return `$${dollars.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function percent(part: number, whole: number): string {
  if (whole <= 0) return "—";
  return `${((part / whole) * 100).toFixed(1)} %`;
}

/// Micro-dollars to the last micro ("$0.000123"), from the integer, so nothing is rounded: for
/// the arithmetic of a charge, where the cents alone would hide it.
export function usdExact(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(Math.trunc(micros));
  const whole = Math.floor(abs / 1_000_000);
  const frac = String(abs % 1_000_000).padStart(6, "0").replace(/0{1,4}$/, "");
  return `${sign}$${whole.toLocaleString("en-US")}.${frac.padEnd(2, "0")}`;
}
