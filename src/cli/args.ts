import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Errors } from '../core/index.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `util.parseArgs` with its errors turned into usage errors: Node's own messages are clear but
 * carry an error code prefix and a stack that the CLI must not print.
 */
export function parse<O extends Options>(
  argv: string[],
  options: O,
  command: string,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const message = e instanceof Error ? e.message.replace(/^.*?: /, '') : String(e);
    throw Errors.usage(`${command}: ${message.replace(/\. To specify a positional.*$/s, '')} (see medfit ${command} --help)`);
  }
}

/** Parses an integer flag, naming it when the value is not one. */
export function intFlag(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw Errors.usage(`--${name} must be an integer of at least ${min} (got "${value}")`);
  return n;
}

/**
 * Parses repeated `--param family.key=value` flags into `{family: {key: value}}`. A bare
 * `key=value` applies to `model` when a single family was chosen.
 */
export function paramFlags(values: string[], model: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const v of values) {
    const m = /^(?:([a-z][a-z-]*)\.)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(v);
    if (!m) throw Errors.usage(`--param "${v}": expected family.key=value, e.g. gbdt.trees=300`);
    const family = m[1] ?? (model !== 'auto' ? model : undefined);
    if (!family) throw Errors.usage(`--param "${v}": name the family (e.g. gbdt.${m[2]}=...) when --model is auto`);
    (out[family] ??= {})[m[2]!] = m[3]!;
  }
  return out;
}

/** A flag's value if it is one of `allowed`, else a usage error listing them. */
export function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw Errors.usage(`--${name} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}
