// `--threshold 'delivery_p99_ms<250'` (repeatable, like k6): a figure, a comparison, a number.
// A run whose (median) figure breaks one exits 99, with the verdicts printed last.
import { formatFigure } from './report/table.ts';

export interface Threshold {
  text: string;
  figure: string;
  op: '<' | '<=' | '>' | '>=' | '==';
  value: number;
}

export interface Verdict {
  threshold: Threshold;
  actual: number | null;
  ok: boolean;
}

export const THRESHOLD_FAILED_EXIT = 99;

export function parseThreshold(text: string): Threshold {
  const m = /^\s*([a-z0-9_]+)\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) {
    throw new Error(
      `--threshold must look like 'delivery_p99_ms<250' (figure, < <= > >= ==, number), got "${text}"`,
    );
  }
  return { text: text.trim(), figure: m[1]!, op: m[2] as Threshold['op'], value: Number(m[3]) };
}

export function evaluate(
  thresholds: Threshold[],
  figures: Record<string, number | null>,
): Verdict[] {
  return thresholds.map((t) => {
    const actual = figures[t.figure] ?? null;
    let ok = false;
    if (actual !== null && !Number.isNaN(actual)) {
      ok =
        t.op === '<'
          ? actual < t.value
          : t.op === '<='
            ? actual <= t.value
            : t.op === '>'
              ? actual > t.value
              : t.op === '>='
                ? actual >= t.value
                : actual === t.value;
    }
    return { threshold: t, actual, ok };
  });
}

export function formatVerdicts(verdicts: Verdict[]): string {
  return verdicts
    .map(
      (v) =>
        `${v.ok ? 'PASS' : 'FAIL'} ${v.threshold.text} (${v.threshold.figure} = ${
          v.actual === null ? 'missing' : formatFigure(v.threshold.figure, v.actual)
        })`,
    )
    .join('\n');
}
