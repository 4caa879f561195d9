// A small history router: the current path as a signal, links that push it.
import { signal } from "@preact/signals";

export const path = signal(location.pathname);
/// The query string ("?…" or ""), for pages whose filters a link can carry.
export const search = signal(location.search);

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  path.value = location.pathname;
  search.value = location.search;
}

addEventListener("popstate", () => {
  path.value = location.pathname;
  search.value = location.search;
});

/// A click on a same-origin link navigates in place (modifier keys keep the browser's way).
export function onLinkClick(e: MouseEvent): void {
  const a = (e.target as Element).closest("a");
  if (!a || a.target || a.hasAttribute("download") || e.button !== 0) return;
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
