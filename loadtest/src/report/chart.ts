// Charts drawn with vega-lite, rendered to SVG by vega in Node (no browser, no canvas).
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { Report } from './report.ts';

export async function renderCharts(report: Report): Promise<string> {
  const latency = report.series.latency.map((p) => ({
    percentile: p.percentile,
    ms: Math.max(p.ms, 0.001),
  }));
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${report.scenario}: ${report.target}`,
    hconcat: [
      {
        title: report.series.latencyLabel,
        width: 360,
        height: 240,
        data: { values: latency },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'percentile', type: 'quantitative', title: 'percentile' },
          y: { field: 'ms', type: 'quantitative', title: 'latency (ms)', scale: { type: 'log' } },
          tooltip: [{ field: 'percentile' }, { field: 'ms', format: '.2f' }],
        },
      },
      {
        title: report.series.throughputLabel,
        width: 360,
        height: 240,
        data: { values: report.series.throughput },
        mark: { type: 'area', line: true, opacity: 0.4 },
        encoding: {
          x: { field: 'second', type: 'quantitative', title: 'second of the run' },
          y: { field: 'value', type: 'quantitative', title: 'per second' },
        },
      },
    ],
  };
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
