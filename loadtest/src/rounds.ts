// `--rounds N`: the same run N times; each figure becomes the median of its rounds, with the
// min-max spread kept beside it (what --compare judges a difference against).
import type { Figures } from './report/report.ts';

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function aggregate(rounds: Figures[]): {
  figures: Figures;
  spread: Record<string, [number, number]>;
} {
  const names = [...new Set(rounds.flatMap((f) => Object.keys(f)))];
  const figures: Figures = {};
  const spread: Record<string, [number, number]> = {};
  for (const name of names) {
    const values = rounds
      .map((f) => f[name])
      .filter((v): v is number => typeof v === 'number' && !Number.isNaN(v));
    if (values.length === 0) {
      figures[name] = null;
      continue;
    }
    figures[name] = median(values);
    spread[name] = [Math.min(...values), Math.max(...values)];
  }
  return { figures, spread };
}
