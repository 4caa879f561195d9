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
