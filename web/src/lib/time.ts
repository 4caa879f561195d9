// Dates in the tenant's time zone. The api groups usage by calendar day in that zone, so the
// range the page asks for starts and ends at midnight *there*, not in the browser's zone.

/// `YYYY-MM-DD` of `at` in `zone`.
export function dayIn(zone: string, at: Date = new Date()): string {
  return new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).format(at);
}

/// Minutes `zone` is ahead of UTC at the instant `at`.
function offsetMinutes(zone: string, at: Date): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(at);
  const n = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const wall = Date.UTC(n("year"), n("month") - 1, n("day"), n("hour"), n("minute"), n("second"));
  return Math.round((wall - Math.floor(at.getTime() / 1000) * 1000) / 60000);
}

/// The instant midnight starts `day` (`YYYY-MM-DD`) in `zone`. Two passes settle the offset
/// on days when the zone changes it (daylight saving time).
export function midnightIn(zone: string, day: string): Date {
  const [y, m, d] = day.split("-").map(Number);
  const wall = Date.UTC(y, m - 1, d);
  let at = new Date(wall - offsetMinutes(zone, new Date(wall)) * 60000);
  at = new Date(wall - offsetMinutes(zone, at) * 60000);
  return at;
}

/// `day` plus `n` days (calendar arithmetic, no zone involved).
export function addDays(day: string, n: number): string {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

/// A timestamp as the tenant reads it, e.g. "3 Dec 2026, 14:05".
export function formatTime(zone: string, iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: zone,
    dateStyle: "medium",
    timeStyle: "short",
  }).format(new Date(iso));
}

/// A timestamp to the second, for one event (a call, an audit entry).
export function formatInstant(zone: string, iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: zone,
    dateStyle: "medium",
    timeStyle: "medium",
  }).format(new Date(iso));
}
