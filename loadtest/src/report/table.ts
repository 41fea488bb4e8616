// The results table printed at the end of a run.

const UNITS: [RegExp, (v: number) => string][] = [
  [/_ms$/, (v) => `${v.toFixed(2)} ms`],
  [/_per_s$/, (v) => v.toFixed(1)],
  [/_bytes$/, (v) => `${(v / 1024 / 1024).toFixed(1)} MiB`],
  [/_kb$/, (v) => `${v.toFixed(1)} kB`],
  [/_us$/, (v) => `${v.toFixed(2)} us`],
  [/_ratio$/, (v) => `${v.toFixed(2)}x`],
];

export function formatFigure(name: string, value: number | null): string {
  if (value === null || Number.isNaN(value)) return 'n/a';
  for (const [re, fmt] of UNITS) if (re.test(name)) return fmt(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

/** Renders rows as an aligned text table. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export function figuresTable(figures: Record<string, number | null>): string {
  return textTable(
    ['figure', 'value'],
    Object.entries(figures).map(([k, v]) => [k, formatFigure(k, v)]),
  );
}
