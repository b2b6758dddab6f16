import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { ErrorMessage, Field, Page } from '../components/ui';
import { announce, useTitle } from '../hooks';
import { useSession } from '../session';

/** Sign-in with an API key: kept in this tab's sessionStorage only, gone when the tab closes. */
export function SignInPage() {
  useTitle('Sign in');
  const session = useSession();
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!key.trim()) {
      setError(new ApiError('Enter an API key. `medfit serve` prints the first admin key when it starts; `medfit keys create` makes more.', 0));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await session.signIn(key.trim());
      announce('Signed in.');
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err), 0));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page title="Sign in to medfit">
      <form class="card signin" onSubmit={submit}>
        {session.notice && !error ? <p class="notice">{session.notice}</p> : null}
        <Field label="API key" hint="Kept for this browser tab only; closing the tab forgets it.">
          {(id, hint) => (
            <input
              id={id}
              aria-describedby={hint}
              type="password"
              name="key"
              autoComplete="off"
              spellcheck={false}
              value={key}
              onInput={(e) => setKey((e.target as HTMLInputElement).value)}
              autoFocus
            />
          )}
        </Field>
        <ErrorMessage error={error} />
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </Page>
  );
}
