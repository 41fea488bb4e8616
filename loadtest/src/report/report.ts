// A run's report: parameters, environment and figures, written as JSON, Markdown and SVG.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { renderCharts } from './chart.ts';
import { formatFigure } from './table.ts';

export type Figures = Record<string, number | null>;

export interface Report {
  scenario: string;
  startedAt: string;
  target: string;
  parameters: Record<string, unknown>;
  environment: {
    node: string;
    platform: string;
    cpus: number;
    cpuModel: string;
    memoryBytes: number;
    gitCommit: string | null;
    note: string;
  };
  figures: Figures;
  /** Latency distribution (percentile -> ms) and throughput per second, for the charts. */
  series: {
    latency: { percentile: number; ms: number }[];
    latencyLabel: string;
    throughput: { second: number; value: number }[];
    throughputLabel: string;
  };
  warnings: string[];
}

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

export function markdown(report: Report, files: { json: string; svg: string }): string {
  const lines = [
    `# Load test: ${report.scenario}`,
    '',
    `- Target: ${report.target}`,
    `- Started: ${report.startedAt}`,
    `- Parameters: ${Object.entries(report.parameters)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
    `- Node ${report.environment.node}, ${report.environment.cpus} x ${report.environment.cpuModel}, commit ${report.environment.gitCommit?.slice(0, 12) ?? 'unknown'}`,
    `- ${report.environment.note}`,
    '',
    '| figure | value |',
    '|---|---|',
    ...Object.entries(report.figures).map(([k, v]) => `| ${k} | ${formatFigure(k, v)} |`),
    '',
  ];
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
