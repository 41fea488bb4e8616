// `--compare old.json`: the figures of two runs side by side, the change in percent, and whether
// the difference is outside the spread (min-max over --rounds) of both runs.
import { readFileSync } from 'node:fs';
import type { Report } from './report.ts';
import { formatFigure, textTable } from './table.ts';

export function readReport(path: string): Report {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  const r = parsed as Partial<Report>;
  if (typeof r !== 'object' || r === null || typeof r.figures !== 'object' || !r.scenario) {
    throw new Error(`${path} is not a load-test report (no scenario or figures)`);
  }
  return r as Report;
}

/**
 * `outside spread` when each run's median lies outside the other's min-max; `within spread`
 * when the ranges overlap; `no spread` when either run had one round (no way to tell noise).
 */
export function verdict(before: Report, after: Report, name: string): string {
  const a = before.figures[name];
  const b = after.figures[name];
  const sa = before.spread?.[name];
  const sb = after.spread?.[name];
  if (a === null || a === undefined || b === null || b === undefined) return '';
  if (!sa || !sb || (before.rounds ?? 1) < 2 || (after.rounds ?? 1) < 2) return 'no spread';
  const outside = (v: number, s: [number, number]) => v < s[0] || v > s[1];
  return outside(b, sa) && outside(a, sb) ? 'OUTSIDE spread' : 'within spread';
}

export function compareReports(before: Report, after: Report): string {
  const names = [...new Set([...Object.keys(before.figures), ...Object.keys(after.figures)])];
  const rows = names.map((name) => {
    const a = before.figures[name] ?? null;
    const b = after.figures[name] ?? null;
    let change = 'n/a';
    if (a !== null && b !== null) {
      if (a === 0) change = b === 0 ? '0.0%' : 'new';
      else change = `${b >= a ? '+' : ''}${(((b - a) / Math.abs(a)) * 100).toFixed(1)}%`;
    }
    return [
      name,
      formatFigure(name, a),
      formatFigure(name, b),
      change,
      verdict(before, after, name),
    ];
  });
  const title =
    before.scenario === after.scenario
      ? `compare ${before.scenario}: ${before.startedAt} -> ${after.startedAt}`
      : `compare ${before.scenario} (old) with ${after.scenario} (new): different scenarios`;
  return `${title}\n${textTable(['figure', 'old', 'new', 'change', 'difference'], rows)}`;
}
