// promtool and a real Prometheus server (Debian's prometheus package) for metrics tests.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../services/shared/free-port.ts';

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/**
 * The alert rules config/alerts.yml must hold (issue 15): target down, broker down, slow-consumer
 * disconnects, rejected connections, fan-out p99.
 */
export const ALERT_NAMES = [
  'HttpSseTargetDown',
  'HttpSseBrokerDown',
  'HttpSseSlowConsumerDisconnects',
  'HttpSseConnectionsRejected',
  'HttpSseFanoutP99High',
];

/**
 * Why a test needing `tool` cannot run, or undefined when it can. In CI (process.env.CI set) a
 * missing tool is a failure, since .ci/run installs it; elsewhere a skip with the reason.
 */
export function missingTool(tool: 'promtool' | 'prometheus'): string | undefined {
  if (has(tool)) return undefined;
  const why = `${tool} is not installed (apt-get install prometheus)`;
  if (process.env.CI) throw new Error(`${why}, and CI is set: the metrics tests need it`);
  return why;
}

/** Runs `promtool check metrics` on an exposition (stdin); returns its exit code and output. */
export function promtoolCheck(exposition: string): { status: number; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], {
    input: exposition,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status ?? -1, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusServer {
  base: string;
  /** An instant query; rejects on an HTTP or PromQL error (with Prometheus' message). */
  query(expr: string): Promise<PromSample[]>;
  /** Prometheus' own output so far (the last 4 KiB), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/** The scrape config: every `targets` entry scraped each second as job `http-sse`. */
export function scrapeConfig(targets: string[]): string {
  return [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: http-sse',
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n');
}

/** Writes the scrape config into `dir` and checks it with promtool; returns the file's path. */
function writeCheckedConfig(dir: string, targets: string[]): string {
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, scrapeConfig(targets));
  const check = spawnSync('promtool', ['check', 'config', file], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (check.status !== 0) {
    throw new Error(`promtool check config failed: ${check.stdout}${check.stderr}`);
  }
  return file;
}

/** Polls /-/ready until it answers 200; throws when the process exits first or after the timeout. */
async function untilReady(c: ChildProcess, base: string, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c.exitCode !== null || c.signalCode !== null) {
      throw new Error(`prometheus exited (${c.exitCode ?? c.signalCode}): ${log()}`);
    }
    const ready = await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`prometheus not ready: ${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An instant query against the HTTP API; throws unless Prometheus answers success. */
async function instantQuery(base: string, expr: string): Promise<PromSample[]> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`, {
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: PromSample[] };
  };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data!.result;
}

/** SIGTERM (SIGKILL after 5 s) and wait for the exit, when it still runs. */
async function terminate(c: ChildProcess | null): Promise<void> {
  if (c === null || c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts Prometheus on a free 127.0.0.1 port with a temporary config and TSDB, scraping `targets`
 * every second; resolves once it answers /-/ready. stop() kills it and removes the directory.
 */
export async function startPrometheus(
  targets: string[],
  readyTimeoutMs = 20_000,
): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'http-sse-prom-'));
  let child: ChildProcess | null = null;
  let output = '';
  const log = () => output;
  const stop = async () => {
    const c = child;
    child = null;
    await terminate(c);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const file = writeCheckedConfig(dir, targets);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const c = spawn(
      'prometheus',
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = c;
    const keep = (s: string) => {
      output = (output + s).slice(-4096);
    };
    c.stdout!.setEncoding('utf8').on('data', keep);
    c.stderr!.setEncoding('utf8').on('data', keep);
    await untilReady(c, base, readyTimeoutMs, log);
    return { base, query: (expr) => instantQuery(base, expr), log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
