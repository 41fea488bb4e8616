// What a run's report holds (parameters, environment, figures, series for the charts), shared by
// the writer (report.ts) and the charts (chart.ts).

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
    /** capacity: delivery p99 at each publish rate tried. */
    capacity?: { rate: number; p99: number | null; ok: boolean; server?: string }[];
  };
  warnings: string[];
  /** Why the harness, not the server, may have set the figures (empty: it did not). */
  harnessLimited?: string[];
  /** --rounds N: figures are medians; [min, max] of each over the rounds. */
  rounds?: number;
  spread?: Record<string, [number, number]>;
}

export function parameterLine(report: Pick<Report, 'parameters'>): string {
  return Object.entries(report.parameters)
    .filter(([k]) => k !== 'channel')
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
