// Figures as text: one unit per kind (times in ms, sizes in bytes with IEC suffixes, rates per
// second, shares in %), chosen by the figure's name suffix; and aligned text tables.

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(v: number): string {
  let x = Math.abs(v);
  let i = 0;
  while (x >= 1024 && i < IEC.length - 1) {
    x /= 1024;
    i++;
  }
  const n = Math.sign(v) * x;
  return `${i === 0 ? n.toFixed(0) : n.toFixed(1)} ${IEC[i]}`;
}

/** Fixed decimals for ordinary values, significant digits for tiny ones. */
function num(v: number, decimals: number): string {
  if (v !== 0 && Math.abs(v) < 10 ** -decimals * 10) return v.toPrecision(2);
  return v.toFixed(decimals);
}

const UNITS: [RegExp, (v: number) => string][] = [
  [/_ms$/, (v) => `${num(v, 2)} ms`],
  [/_bytes_per_s$/, (v) => `${formatBytes(v)}/s`],
  [/_per_s$/, (v) => `${num(v, 1)}/s`],
  [/_bytes$/, formatBytes],
  [/_pct$/, (v) => `${v.toFixed(1)} %`],
  [/_s$/, (v) => `${num(v, 2)} s`],
  [/_ratio$/, (v) => `${v.toFixed(2)}x`],
];

export function formatFigure(name: string, value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
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

/** The figures, with `min - max` beside each when the run had several rounds. */
export function figuresTable(
  figures: Record<string, number | null>,
  spread?: Record<string, [number, number]>,
): string {
  if (!spread) {
    return textTable(
      ['figure', 'value'],
      Object.entries(figures).map(([k, v]) => [k, formatFigure(k, v)]),
    );
  }
  return textTable(
    ['figure', 'median', 'min - max'],
    Object.entries(figures).map(([k, v]) => {
      const s = spread[k];
      return [
        k,
        formatFigure(k, v),
        s ? `${formatFigure(k, s[0])} - ${formatFigure(k, s[1])}` : '',
      ];
    }),
  );
}
