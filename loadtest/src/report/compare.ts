// `--compare old.json`: the figures of two runs side by side, with the change in percent.
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
    return [name, formatFigure(name, a), formatFigure(name, b), change];
  });
  const title =
    before.scenario === after.scenario
      ? `compare ${before.scenario}: ${before.startedAt} -> ${after.startedAt}`
      : `compare ${before.scenario} (old) with ${after.scenario} (new): different scenarios`;
  return `${title}\n${textTable(['figure', 'old', 'new', 'change'], rows)}`;
}
