/**
 * Routes live in the URL (reload, Back and a shared link land on the same page): a small
 * history-API router. `match` turns a pattern such as `/models/:name/versions/:v` into params.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

type Listener = () => void;
const listeners = new Set<Listener>();

function notify(): void {
  for (const l of listeners) l();
}
addEventListener('popstate', notify);

/** Goes to `to` (a path with optional query), adding a history entry unless `replace`. */
export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  scrollTo(0, 0);
  notify();
}

/** The current location; re-renders the caller when it changes. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Sets one query parameter (or removes it with null) without a new history entry. */
export function setQuery(name: string, value: string | null): void {
  const q = new URLSearchParams(location.search);
  if (value === null) q.delete(name);
  else q.set(name, value);
  const s = q.toString();
  // The same page with another view of it (a filter, a picker): no new history entry, no scroll.
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
  notify();
}

/** The params of `path` under `pattern`, or null when it does not match. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const a = path.split('/').filter(Boolean);
  if (p.length !== a.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i]!.startsWith(':')) {
      try {
        out[p[i]!.slice(1)] = decodeURIComponent(a[i]!);
      } catch {
        return null;
      }
    } else if (p[i] !== a[i]) return null;
  }
  return out;
}

/** An in-app link: a real `<a href>` (open in a new tab works) that navigates without a reload. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; id?: string; title?: string; 'aria-current'?: 'page' | undefined; 'aria-label'?: string }): JSX.Element {
  const { href, children, ...rest } = props;
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
