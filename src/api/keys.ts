import { createHash, randomBytes } from 'node:crypto';
import { Errors, MedfitError } from '../core/index.js';
import { SCOPES, type ApiKeyRecord, type MetadataStore, type Scope } from '../store/index.js';

/**
 * What an API key's name may be (the API checks it; names the CLI gave before are kept as they
 * are): 1-64 characters, a letter or digit first, so a name reads cleanly in a list and a log.
 */
export const KEY_NAME = '^[A-Za-z0-9][A-Za-z0-9 _.:@()-]{0,63}$';

/** SHA-256 of a presented key: what is stored and looked up. The secret itself is never stored. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Parses a comma-separated scope list, naming any unknown scope. */
export function parseScopes(raw: string): Scope[] {
  const scopes = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (bad.length || scopes.length === 0) throw Errors.usage(`scopes must be a comma-separated list of ${SCOPES.join(', ')} (got "${raw}")`);
  return [...new Set(scopes)] as Scope[];
}

/**
 * Creates a key in `projectName` (creating the project on first use). Returns the record and the
 * secret, which is shown once and cannot be recovered: only its hash is kept.
 */
export async function createKey(
  store: MetadataStore,
  projectName: string,
  scopes: Scope[],
  name: string,
  secret?: string,
): Promise<{ key: string; record: ApiKeyRecord }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(projectName)) {
    throw Errors.usage(`project name must be 1-64 letters, digits, '.', '_' or '-' (got "${projectName}")`);
  }
  const project = (await store.getProjectByName(projectName)) ?? (await createProjectOnce(store, projectName));
  const id = randomBytes(6).toString('hex');
  const key = secret ?? `mf_${id}_${randomBytes(24).toString('base64url')}`;
  const record = await store.createKey({ id, projectId: project.id, name, scopes, hash: hashKey(key) });
  return { key, record };
}

/**
 * At start-up: `MEDFIT_ADMIN_KEY` becomes an admin key of project `default` if it is not one yet;
 * without it, a store with no keys at all gets a fresh admin key, returned so it is printed once.
 */
export async function bootstrapAdminKey(store: MetadataStore, adminKey: string | undefined): Promise<string | undefined> {
  if (adminKey !== undefined) {
    const existing = await store.getKeyByHash(hashKey(adminKey));
    // Replicas starting together race to create it: the one that loses finds it made.
    if (!existing) await createKey(store, 'default', ['admin'], 'MEDFIT_ADMIN_KEY', adminKey).catch(async (e: unknown) => {
      if (!(e instanceof MedfitError && e.code === 'MEDFIT_ERR_CONFLICT' && (await store.getKeyByHash(hashKey(adminKey))))) throw e;
    });
    return undefined;
  }
  if ((await store.countKeys()) > 0) return undefined;
  return (await createKey(store, 'default', ['admin'], 'first admin key')).key;
}

/** Creates a project, or finds the one another process created at the same moment. */
async function createProjectOnce(store: MetadataStore, name: string) {
  try {
    return await store.createProject(name);
  } catch (e) {
    const made = e instanceof MedfitError && e.code === 'MEDFIT_ERR_CONFLICT' ? await store.getProjectByName(name) : undefined;
    if (!made) throw e;
    return made;
  }
}
