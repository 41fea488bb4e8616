// Charts drawn with vega-lite, rendered to SVG by vega in Node (no browser, no canvas): latency
// percentiles on a log "nines" axis (50 %, 90 %, 99 %, 99.9 % equally spaced), throughput per
// whole second, p99 against publish rate for capacity runs, and old-against-new for --compare.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { parameterLine, type Report } from './report-shape.ts';

/** -log10(1 - p): 90 % -> 1, 99 % -> 2, 99.9 % -> 3; 100 % is left off (no finite place). */
export const nines = (percentile: number): number => 0 - Math.log10(1 - percentile / 100);

const NINES_AXIS = {
  title: 'percentile',
  values: [0.30103, 1, 2, 3, 4],
  labelOverlap: false,
  labelExpr:
    "datum.value < 0.1 ? '0%' : datum.value < 0.5 ? '50%' : datum.value < 1.5 ? '90%' : datum.value < 2.5 ? '99%' : datum.value < 3.5 ? '99.9%' : '99.99%'",
};

async function toSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

function latencyPanel(points: { percentile: number; ms: number; run?: string }[], title: string) {
  return {
    title,
    width: 360,
    height: 240,
    data: {
      values: points
        .filter((p) => p.percentile < 100)
        .map((p) => ({ ...p, nines: nines(p.percentile), ms: Math.max(p.ms, 0.001) })),
    },
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'nines', type: 'quantitative' as const, axis: NINES_AXIS, title: 'percentile' },
      y: {
        field: 'ms',
        type: 'quantitative' as const,
        title: 'latency (ms)',
        scale: { type: 'log' as const },
      },
      ...(points.some((p) => p.run) ? { color: { field: 'run', type: 'nominal' as const } } : {}),
      tooltip: [{ field: 'percentile' }, { field: 'ms', format: '.2f' }],
    },
  };
}

const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

function throughputPanel(series: Report['series']) {
  return {
    title: `${series.throughputLabel} (whole seconds only)`,
    width: 360,
    height: 240,
    data: { values: series.throughput },
    mark: { type: 'area', line: true, opacity: 0.4 },
    encoding: {
      x: {
        field: 'second',
        type: 'quantitative',
        title: 'second of the measured window',
        axis: { format: 'd', tickMinStep: 1 },
      },
      y: { field: 'value', type: 'quantitative', title: 'per second' },
    },
  } as vl.TopLevelSpec;
}

/** Capacity steps: one colour per server and a shape for sustained (bench), else colour = ok. */
function capacityPanel(capacity: NonNullable<Report['series']['capacity']>) {
  return {
    title: 'delivery p99 against publish rate',
    width: 360,
    height: 240,
    data: { values: capacity.filter((p) => p.p99 !== null) },
    mark: { type: 'point', filled: true, size: 60 },
    encoding: {
      x: { field: 'rate', type: 'quantitative', title: 'events published per second' },
      y: {
        field: 'p99',
        type: 'quantitative',
        title: 'delivery p99 (ms)',
        scale: { type: 'log' },
      },
      ...(capacity.some((p) => p.server)
        ? {
            color: { field: 'server', type: 'nominal', title: 'server' },
            shape: { field: 'ok', type: 'nominal', title: 'sustained' },
          }
        : {
            color: {
              field: 'ok',
              type: 'nominal',
              title: 'sustained',
              scale: { domain: [true, false], range: ['#2a7', '#c33'] },
            },
          }),
    },
  } as vl.TopLevelSpec;
}

export function renderCharts(report: Report): Promise<string> {
  const { series } = report;
  const panels: vl.TopLevelSpec[] = [];
  if (series.latency.length > 0) {
    panels.push(latencyPanel(series.latency, series.latencyLabel) as vl.TopLevelSpec);
  }
  if (series.throughput.length > 0) panels.push(throughputPanel(series));
  if (series.capacity && series.capacity.length > 0) panels.push(capacityPanel(series.capacity));
  return toSvg({
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: `${report.scenario}: ${report.target}`,
      subtitle: parameterLine(report),
    },
    hconcat: panels as never,
  });
}

/** Each figure of both runs: the median, and min-max over rounds (the value itself without). */
function comparisonBars(before: Report, after: Report, names: string[]) {
  return names.flatMap((name) =>
    (
      [
        ['old', before],
        ['new', after],
      ] as const
    ).map(([run, r]) => ({
      figure: name,
      run,
      value: r.figures[name] ?? 0,
      min: r.spread?.[name]?.[0] ?? r.figures[name] ?? 0,
      max: r.spread?.[name]?.[1] ?? r.figures[name] ?? 0,
    })),
  );
}

function figuresPanel(bars: ReturnType<typeof comparisonBars>) {
  return {
    title: 'figures (bars: median, rule: min-max over rounds)',
    width: 200,
    height: 240,
    data: { values: bars },
    facet: { field: 'figure', type: 'nominal', title: null },
    spec: {
      width: 80,
      height: 200,
      layer: [
        {
          mark: 'bar',
          encoding: {
            x: { field: 'run', type: 'nominal', title: null, sort: ['old', 'new'] },
            y: { field: 'value', type: 'quantitative', title: null },
            color: { field: 'run', type: 'nominal' },
          },
        },
        {
          mark: 'rule',
          encoding: {
            x: { field: 'run', type: 'nominal', sort: ['old', 'new'] },
            y: { field: 'min', type: 'quantitative' },
            y2: { field: 'max' },
          },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** --compare: the latency percentiles of both runs, and the figures both have, old beside new. */
export function renderComparison(before: Report, after: Report, names: string[]): Promise<string> {
  const latency = [
    ...before.series.latency.map((p) => ({ ...p, run: 'old' })),
    ...after.series.latency.map((p) => ({ ...p, run: 'new' })),
  ];
  const panels: unknown[] = [];
  if (latency.length > 0) panels.push(latencyPanel(latency, 'delivery latency, old and new'));
  panels.push(figuresPanel(comparisonBars(before, after, names)));
  return toSvg({
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: `compare ${before.scenario}: ${before.startedAt} -> ${after.startedAt}`,
      subtitle: `old: ${parameterLine(before)} | new: ${parameterLine(after)}`,
    },
    vconcat: panels as never,
  });
}
