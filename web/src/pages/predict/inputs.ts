/** The form a version's input schema makes, and the record a filled form sends. */
import type { InputSpec, VersionDetail } from './types';

/** Most inputs an uploaded model's form shows; past this the page explains the API instead. */
export const MAX_FORM_INPUTS = 300;

/**
 * The inputs of a table model: the schema's feature columns (ignored, target and identifier
 * columns are left out), numbers, drop-downs of the categories the pipeline learned, booleans;
 * an uploaded ONNX model's declared features, all numbers.
 */
export function inputSpecs(v: VersionDetail): InputSpec[] {
  if (v.source === 'uploaded') return (v.features ?? []).map((name) => ({ name, kind: 'number' as const }));
  const steps = new Map((v.inputColumns ?? []).map((s) => [s.column, s]));
  const features = v.features ?? [];
  return (v.schema?.columns ?? [])
    .filter((c) => c.role === 'feature')
    .map((c): InputSpec => {
      const step = steps.get(c.name);
      switch (c.type) {
        case 'numeric':
          return { name: c.name, kind: 'number' };
        case 'integer':
          return { name: c.name, kind: 'integer' };
        case 'boolean':
          return { name: c.name, kind: 'boolean' };
        case 'categorical': {
          // The pipeline names a category's one-hot feature `<column>=<category>`.
          const prefix = `${c.name}=`;
          const choices = step?.categories ?? features.filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length));
          return choices.length ? { name: c.name, kind: 'category', choices } : { name: c.name, kind: 'text' };
        }
        case 'datetime':
          return { name: c.name, kind: 'datetime' };
        default:
          return { name: c.name, kind: 'text' };
      }
    });
}

/** The record a form sends: blank fields left out (the API imputes them as in training). */
export function recordOf(specs: InputSpec[], values: Record<string, string>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const s of specs) {
    const raw = (values[s.name] ?? '').trim();
    if (raw === '') continue;
    if (s.kind === 'number' || s.kind === 'integer') {
      const n = Number(raw);
      // A value that is not a number goes as written, so the API's message names the field.
      out[s.name] = Number.isFinite(n) ? n : raw;
    } else if (s.kind === 'boolean') out[s.name] = raw === 'true';
    else out[s.name] = raw;
  }
  return out;
}

/** A shell-safe `curl` command for a JSON POST, the key left as `$MEDFIT_KEY`. */
export function curlCommand(url: string, body: unknown): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [`curl -sS -X POST ${q(url)}`, `  -H "Authorization: Bearer $MEDFIT_KEY"`, `  -H 'Content-Type: application/json'`, `  -d ${q(JSON.stringify(body))}`].join(' \\\n');
}
