// A run's report: parameters, environment and figures, written as JSON, Markdown and SVG.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { renderCharts } from './chart.ts';
import { type Figures, parameterLine, type Report } from './report-shape.ts';
import { formatFigure } from './table.ts';

export type { Figures, Report };

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

export function environment(): Report['environment'] {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    gitCommit: gitCommit(),
    note: 'the load generator runs on the same machine as the server unless --url says otherwise',
  };
}

/** Each line as `<label>: <line>` (warnings of one round, server or step among others). */
export const labelled = (label: string, lines: string[]): string[] =>
  lines.map((line) => `${label}: ${line}`);

/** `k=v, ...` of the run's parameters (also in the chart titles). */
export function markdown(report: Report, files: { json: string; svg: string }): string {
  const lines = [
    `# Load test: ${report.scenario}`,
    '',
    `- Target: ${report.target}`,
    `- Started: ${report.startedAt}`,
    `- Parameters: ${parameterLine(report)}`,
    ...(report.rounds && report.rounds > 1
      ? [`- ${report.rounds} rounds: figures are medians, min - max beside them`]
      : []),
    `- Node ${report.environment.node}, ${report.environment.cpus} x ${report.environment.cpuModel}, commit ${report.environment.gitCommit?.slice(0, 12) ?? 'unknown'}`,
    `- ${report.environment.note}`,
    '',
    '| figure | value | min - max |',
    '|---|---|---|',
    ...Object.entries(report.figures).map(([k, v]) => {
      const s = report.spread?.[k];
      const range = s ? `${formatFigure(k, s[0])} - ${formatFigure(k, s[1])}` : '';
      return `| ${k} | ${formatFigure(k, v)} | ${range} |`;
    }),
    '',
  ];
  if (report.harnessLimited && report.harnessLimited.length > 0) {
    lines.push(
      '## Harness-limited',
      '',
      'The load generator, not (only) the server, may have set these figures:',
      '',
      ...report.harnessLimited.map((w) => `- ${w}`),
      '',
    );
  }
  if (report.warnings.length > 0) {
    lines.push('## Warnings', '', ...report.warnings.map((w) => `- **${w}**`), '');
  }
  lines.push(`![charts](${files.svg})`, '', `Raw figures: [${files.json}](${files.json})`, '');
  return lines.join('\n');
}

/** Writes `<out>/<scenario>-<timestamp>.{json,md,svg}`; returns the paths. */
export async function writeReport(
  report: Report,
  outDir: string,
): Promise<{ json: string; markdown: string; svg: string }> {
  mkdirSync(outDir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const base = join(outDir, `${report.scenario}-${stamp}`);
  const paths = { json: `${base}.json`, markdown: `${base}.md`, svg: `${base}.svg` };
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.svg, await renderCharts(report));
  const rel = (p: string) => p.slice(outDir.length + 1);
  writeFileSync(paths.markdown, markdown(report, { json: rel(paths.json), svg: rel(paths.svg) }));
  return paths;
}
