/**
 * The shell: sign-in gate, the navigation (only what the key's scopes allow), the live region,
 * and the route table. Pages live in pages/, one file per area.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { setAnnouncer } from './hooks';
import { Link, match, navigate, useLocation } from './router';
import { useSession, type Scope } from './session';
import { SignInPage } from './pages/signin';
import { HomePage } from './pages/home';
import { DatasetPage, DatasetsPage } from './pages/datasets';
import { TrainPage } from './pages/train';
import { JobPage, JobsPage } from './pages/jobs';
import { ComparePage, ModelPage, ModelsPage, VersionPage } from './pages/models';
import { PredictPage } from './pages/predict';
import { AuditPage, KeysPage } from './pages/admin';
import { NotFoundPage } from './pages/notfound';

interface Route {
  pattern: string;
  scope: Scope;
  view: (params: Record<string, string>) => ComponentChildren;
}

/** Every page, with the scope it needs (a key without it is not offered the page). */
const ROUTES: Route[] = [
  { pattern: '/', scope: 'predict', view: () => <HomePage /> },
  { pattern: '/datasets', scope: 'read', view: () => <DatasetsPage /> },
  { pattern: '/datasets/:id', scope: 'read', view: (p) => <DatasetPage id={p.id!} /> },
  { pattern: '/train', scope: 'train', view: () => <TrainPage /> },
  { pattern: '/jobs', scope: 'read', view: () => <JobsPage /> },
  { pattern: '/jobs/:id', scope: 'read', view: (p) => <JobPage id={p.id!} /> },
  { pattern: '/models', scope: 'read', view: () => <ModelsPage /> },
  { pattern: '/models/:name', scope: 'read', view: (p) => <ModelPage name={p.name!} /> },
  { pattern: '/models/:name/compare', scope: 'read', view: (p) => <ComparePage name={p.name!} /> },
  { pattern: '/models/:name/versions/:v', scope: 'read', view: (p) => <VersionPage name={p.name!} version={p.v!} /> },
  { pattern: '/models/:name/versions/:v/predict', scope: 'predict', view: (p) => <PredictPage name={p.name!} version={p.v!} /> },
  { pattern: '/admin/keys', scope: 'admin', view: () => <KeysPage /> },
  { pattern: '/admin/audit', scope: 'admin', view: () => <AuditPage /> },
];

const NAV: { href: string; label: string; scope: Scope; section: string }[] = [
  { href: '/datasets', label: 'Datasets', scope: 'read', section: '/datasets' },
  { href: '/train', label: 'Train', scope: 'train', section: '/train' },
  { href: '/jobs', label: 'Jobs', scope: 'read', section: '/jobs' },
  { href: '/models', label: 'Models', scope: 'read', section: '/models' },
  { href: '/admin/keys', label: 'Keys', scope: 'admin', section: '/admin/keys' },
  { href: '/admin/audit', label: 'Audit log', scope: 'admin', section: '/admin/audit' },
];

function LiveRegion() {
  const [text, setText] = useState('');
  useEffect(() => {
    let t: ReturnType<typeof setTimeout> | undefined;
    let hide: ReturnType<typeof setTimeout> | undefined;
    setAnnouncer((msg) => {
      // Clear first so the same message twice is announced twice; the toast then leaves after a
      // while so it does not cover the page (screen readers have announced it by then).
      setText('');
      clearTimeout(t);
      clearTimeout(hide);
      t = setTimeout(() => setText(msg), 50);
      hide = setTimeout(() => setText(''), 8000);
    });
    return () => {
      clearTimeout(t);
      clearTimeout(hide);
      setAnnouncer(null);
    };
  }, []);
  return (
    <div class="live" role="status" aria-live="polite" data-testid="status">
      {text}
    </div>
  );
}

export function App() {
  const session = useSession();
  const { path } = useLocation();

  if (session.checking) return <p class="muted boot">Checking the saved key…</p>;

  if (!session.info) {
    return (
      <>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top"><span class="brand">medfit</span></header>
        <main id="main" tabIndex={-1}>
          <SignInPage />
        </main>
        <LiveRegion key={session.generation} />
      </>
    );
  }

  let content: ComponentChildren = <NotFoundPage />;
  for (const r of ROUTES) {
    const params = match(r.pattern, path);
    if (!params) continue;
    content = session.can(r.scope) ? r.view(params) : <NotFoundPage reason={`This key lacks the "${r.scope}" scope needed for this page.`} />;
    break;
  }

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href="/" class="brand">medfit</Link>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => session.can(n.scope)).map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={path === n.section || path.startsWith(`${n.section}/`) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
            <li>
              <a href="/docs" target="_blank" rel="noopener">API docs</a>
            </li>
          </ul>
        </nav>
        <div class="who">
          <span title={`key ${session.info.key.name}`}>
            {session.info.project.name} · {session.info.scopes.join(', ')}
          </span>
          <button
            type="button"
            class="btn btn-plain"
            onClick={() => {
              session.signOut('Signed out.');
              navigate('/', true);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      {/* Keyed on the session, so a new key starts with no view state of the old one. */}
      <main id="main" tabIndex={-1} key={session.generation}>
        {content}
      </main>
      <LiveRegion key={session.generation} />
    </>
  );
}
