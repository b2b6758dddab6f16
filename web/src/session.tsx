/**
 * Who is signed in: the key's project and scopes (from `GET /v1/session`), so pages offer only
 * what the key may do. Signing out or a refused key clears everything the previous key loaded:
 * the app remounts from scratch (`generation` changes), so no view keeps another key's data.
 */
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { api, ApiError, setUnauthorizedHandler, storedKey, storeKey } from './api';

export type Scope = 'admin' | 'train' | 'predict' | 'read';

export interface SessionInfo {
  project: { id: string; name: string };
  key: { id: string; name: string; created?: string };
  scopes: Scope[];
}

export interface Session {
  info: SessionInfo | null;
  /** True while the stored key is being checked at start-up. */
  checking: boolean;
  /** Whether the key holds `scope` (admin holds every scope). */
  can(scope: Scope): boolean;
  signIn(key: string): Promise<void>;
  signOut(message?: string): void;
  /** Why the last session ended, shown on the sign-in page. */
  notice: string | null;
  /** Changes on every sign-in and sign-out; the app keys its views on it. */
  generation: number;
}

const Ctx = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(Ctx);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

export function SessionProvider({ children }: { children: ComponentChildren }) {
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const [checking, setChecking] = useState(storedKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);

  const signOut = (message?: string) => {
    storeKey(null);
    setInfo(null);
    setNotice(message ?? null);
    setGeneration((g) => g + 1);
  };

  useEffect(() => {
    setUnauthorizedHandler(() => signOut('The API key was refused (unknown or revoked). Sign in again.'));
    const key = storedKey();
    if (key) {
      api<SessionInfo>('/v1/session', { key })
        .then((s) => setInfo(s))
        .catch((e: ApiError) => {
          storeKey(null);
          setNotice(e.message);
        })
        .finally(() => setChecking(false));
    }
    return () => setUnauthorizedHandler(null);
  }, []);

  const session: Session = {
    info,
    checking,
    notice,
    generation,
    can: (scope) => !!info && (info.scopes.includes(scope) || info.scopes.includes('admin')),
    async signIn(key) {
      const s = await api<SessionInfo>('/v1/session', { key });
      storeKey(key);
      setNotice(null);
      setInfo(s);
      setGeneration((g) => g + 1);
    },
    signOut,
  };
  return <Ctx.Provider value={session}>{children}</Ctx.Provider>;
}
