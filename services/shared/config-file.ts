// Loads a YAML config file, overlays environment variables and validates the result with zod.
// Every failure becomes one ConfigError whose message names the file, the key, the value and what
// is allowed, so a service can print it as one line and exit 2.
import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** How an environment variable's text becomes a config value. */
export type EnvKind = 'string' | 'int' | 'list' | 'bool';

/** Maps an environment variable to a dotted config key. */
export interface EnvBinding {
  key: string;
  kind: EnvKind;
  /** Set for an old name that still works: the variable to use instead (a warning says so). */
  replacedBy?: string;
}

export interface LoadOptions<S extends z.ZodType> {
  /** Path of the YAML file; a missing file is an error only when `required`. */
  file: string;
  required?: boolean;
  schema: S;
  env?: Record<string, string | undefined>;
  envMap?: Record<string, EnvBinding>;
  /** Values that win over file and environment (command-line flags), by dotted key. */
  overrides?: Record<string, unknown>;
  /** Old dotted keys of the file that still work, and the key each became (with a warning). */
  renamedKeys?: Record<string, string>;
  /** Receives one line per deprecated name in use (the caller logs them). */
  warnings?: string[];
  /** Dotted keys whose values are secret: an error about one names the key but not its value. */
  sensitiveKeys?: readonly string[];
}

type Tree = Record<string, unknown>;

function setPath(tree: Tree, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = tree;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    const next = node[part];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts.at(-1)!] = value;
}

function deletePath(tree: Tree, dotted: string): void {
  const parts = dotted.split('.');
  const parent = getPath(tree, parts.slice(0, -1));
  if (parent !== null && typeof parent === 'object') delete (parent as Tree)[parts.at(-1)!];
}

function getPath(tree: unknown, path: readonly PropertyKey[]): unknown {
  let node = tree;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

function envValue(raw: string, kind: EnvKind): unknown {
  switch (kind) {
    case 'int':
      return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    default:
      return raw;
  }
}

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

function readYaml(file: string, required: boolean): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return {};
    throw new ConfigError(
      `${displayPath(file)}: cannot read the config file (${code ?? String(err)})`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0];
    throw new ConfigError(`${displayPath(file)}: not valid YAML: ${first}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(
      `${displayPath(file)}: the top level must be a mapping of keys to values`,
    );
  }
  return doc as Tree;
}

/** Loads, overlays and validates; throws ConfigError with a one-line message. */
export function loadConfig<S extends z.ZodType>(options: LoadOptions<S>): z.output<S> {
  const { file, schema, env = {}, envMap = {}, overrides = {}, renamedKeys = {} } = options;
  const warnings = options.warnings ?? [];
  const tree = readYaml(file, options.required ?? false);
  for (const [old, key] of Object.entries(renamedKeys)) {
    const value = getPath(tree, old.split('.'));
    if (value === undefined) continue;
    deletePath(tree, old);
    if (getPath(tree, key.split('.')) === undefined) setPath(tree, key, value);
    warnings.push(`${displayPath(file)}: ${old} is deprecated; it is now ${key}`);
  }
  const origin = new Map<string, string>();
  // Deprecated names first, so that the current name wins when both are set.
  const bindings = Object.entries(envMap).sort(
    ([, a], [, b]) => Number(b.replacedBy !== undefined) - Number(a.replacedBy !== undefined),
  );
  for (const [name, binding] of bindings) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    setPath(tree, binding.key, envValue(raw, binding.kind));
    origin.set(binding.key, `environment variable ${name}`);
    if (binding.replacedBy) {
      warnings.push(`environment variable ${name} is deprecated; use ${binding.replacedBy}`);
    }
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    setPath(tree, key, value);
    origin.set(key, 'command line');
  }
  const result = schema.safeParse(tree);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let path: PropertyKey[] = issue.path;
  let why = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...issue.path, issue.keys[0]!];
    why = 'unknown key (check the spelling against the documented keys)';
  }
  const key = path.map(String).join('.') || '(top level)';
  const value = getPath(tree, path);
  const from = origin.get(key);
  const secret = options.sensitiveKeys?.includes(key) ?? false;
  const shown = value === undefined ? 'missing' : secret ? '[redacted]' : JSON.stringify(value);
  throw new ConfigError(
    `${displayPath(file)}: ${key} = ${shown}${from ? ` (from ${from})` : ''}: ${why}`,
  );
}
