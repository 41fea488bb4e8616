// The Docker end-to-end test (npm run test:docker): builds the images, starts the compose stack
// under its own project name, and checks what a user would do with it. Always cleans up with
// `docker compose down -v --rmi local` (the project's own images go too), also on failure and on
// SIGINT/SIGTERM. Bounded: every step has a timeout, and the whole run stops after 20 minutes.
import { type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../services/shared/free-port.ts';
import { EXAMPLE_HEADERS, exampleBody, exampleClientLines } from '../helpers/example.ts';
import { ALERT_NAMES } from '../helpers/prometheus.ts';
import { E2E_PER_IP_LIMIT, scaleSteps } from './scale-steps.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const project = `httpsse-e2e-${process.pid}`;
const resultsDir = join(root, 'loadtest/results');
const TOTAL_TIMEOUT_MS = 20 * 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function log(line: string): void {
  process.stderr.write(`[e2e] ${line}\n`);
}

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  opts: SpawnOptions = {},
): Promise<Run> {
  const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

const compose = (args: string[], timeoutMs = 120_000) =>
  run('docker', ['compose', '-p', project, ...args], timeoutMs);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

function expect(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

const hostPort = await freePort();
const promPort = await freePort();
const tlsPort = await freePort();
const plainPort = await freePort();
const env = {
  ...process.env,
  SSE_HOST_PORT: String(hostPort),
  PROMETHEUS_HOST_PORT: String(promPort),
  SSE_TLS_HOST_PORT: String(tlsPort),
  SSE_PROXY_HOST_PORT: String(plainPort),
  SSE_MAX_CONNECTIONS_PER_IP: String(E2E_PER_IP_LIMIT),
  SSE_PUBLISH_TOKEN: 'e2e-token',
};
const base = `http://127.0.0.1:${hostPort}`;
const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
/** The project's image names, found in the first step. */
const images = { server: '', client: '' };

const EXAMPLE_STATUS_AND_HEADERS = ['HTTP/1.1 200 OK', ...EXAMPLE_HEADERS];
const exampleClient = [...exampleClientLines(), 'SSE stream finished'].join('\n');

const steps: [string, () => Promise<void>][] = [
  [
    'docker compose up -d --build server, and its readiness healthcheck reports healthy',
    async () => {
      const build = await compose(['build', 'server', 'client'], 15 * 60_000);
      expect(build.code === 0, `compose build failed:\n${build.stderr.slice(-3000)}`);
      const up = await compose(['up', '-d', '--build', 'server'], 15 * 60_000);
      expect(up.code === 0, `compose up failed:\n${up.stderr.slice(-3000)}`);
      const id = (await compose(['ps', '-q', 'server'])).stdout.trim();
      expect(id !== '', 'no server container');
      await until('the server to be healthy', 90_000, async () => {
        const r = await run('docker', ['inspect', '-f', '{{.State.Health.Status}}', id], 10_000);
        return r.stdout.trim() === 'healthy' ? true : undefined;
      });
      const log = await run('docker', ['inspect', '-f', '{{json .State.Health.Log}}', id], 10_000);
      const probes = JSON.parse(log.stdout) as { ExitCode: number; Output: string }[];
      expect(
        probes.at(-1)?.ExitCode === 0 && probes.at(-1)?.Output.trim() === 'HTTP/1.1 200 OK',
        `last healthcheck: ${log.stdout}`,
      );
      // The accept queue is raised for reconnect storms (compose sysctls).
      const backlog = await run(
        'docker',
        ['inspect', '-f', '{{index .HostConfig.Sysctls "net.core.somaxconn"}}', id],
        10_000,
      );
      expect(backlog.stdout.trim() === '65535', `server somaxconn: ${backlog.stdout}`);
      images.server = (
        await run('docker', ['inspect', '-f', '{{.Config.Image}}', id], 10_000)
      ).stdout.trim();
      // Compose v1 names a built image <project>_<service>, v2 <project>-<service>.
      const list = await run('docker', ['image', 'ls', '--format', '{{.Repository}}'], 10_000);
      const client = list.stdout
        .split('\n')
        .find((r) => r === `${project}_client` || r === `${project}-client`);
      expect(client !== undefined, `no client image named after project ${project}`);
      images.client = client;
      expect(images.server.startsWith(project), `server image ${images.server} not per project`);
    },
  ],
  [
    'the images run as the node user, carry the OCI labels, and probe /readyz cheaply',
    async () => {
      for (const image of [images.server, images.client]) {
        const r = await run(
          'docker',
          ['image', 'inspect', '-f', '{{.Config.User}} {{json .Config.Labels}}', image],
          10_000,
        );
        const [user, labels] = [
          r.stdout.slice(0, r.stdout.indexOf(' ')),
          r.stdout.slice(r.stdout.indexOf(' ') + 1),
        ];
        expect(user === 'node', `${image} runs as "${user}"`);
        const oci = JSON.parse(labels) as Record<string, string>;
        for (const key of ['title', 'description', 'source', 'licenses', 'version']) {
          expect(Boolean(oci[`org.opencontainers.image.${key}`]), `${image}: no ${key} label`);
        }
        expect(
          oci['org.opencontainers.image.version'] === version,
          `${image}: version label ${oci['org.opencontainers.image.version']}, package.json ${version}`,
        );
      }
      const hc = await run(
        'docker',
        ['image', 'inspect', '-f', '{{json .Config.Healthcheck.Test}}', images.server],
        10_000,
      );
      expect(hc.stdout.includes('healthcheck.sh'), `server image healthcheck: ${hc.stdout}`);
    },
  ],
  [
    'curl -i -N /sse/test shows the example byte for byte',
    async () => {
      const r = await run(
        'curl',
        ['-sS', '-i', '-N', '--max-time', '30', `${base}/sse/test`],
        40_000,
      );
      expect(r.code === 0, `curl failed (${r.code}): ${r.stderr}`);
      const split = r.stdout.indexOf('\r\n\r\n');
      const headers = r.stdout.slice(0, split).split('\r\n');
      const body = r.stdout.slice(split + 4);
      expect(
        JSON.stringify(headers.slice(0, EXAMPLE_STATUS_AND_HEADERS.length)) ===
          JSON.stringify(EXAMPLE_STATUS_AND_HEADERS),
        `headers:\n${headers.join('\n')}`,
      );
      expect(body === exampleBody(), `body:\n${JSON.stringify(body)}`);
    },
  ],
  [
    'docker compose run --rm client prints the ten events and SSE stream finished',
    async () => {
      const r = await compose(['run', '--rm', 'client'], 5 * 60_000);
      expect(r.code === 0, `client exited ${r.code}: ${r.stderr.slice(-2000)}`);
      expect(r.stdout.trim() === exampleClient, `client output:\n${r.stdout}`);
    },
  ],
  [
    'options pass through to the client container (--json --url ...)',
    async () => {
      const r = await compose(
        [
          'run',
          '--rm',
          'client',
          '--json',
          '--url',
          'http://server:24856/sse/test?interval_ms=0&count=3',
        ],
        2 * 60_000,
      );
      expect(r.code === 0, `client exited ${r.code}: ${r.stderr.slice(-2000)}`);
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string });
      expect(lines.map((l) => l.id).join(',') === '0,1,2', `json output:\n${r.stdout}`);
    },
  ],
  [
    'GET /metrics from the host counts the streams',
    async () => {
      const res = await fetch(`${base}/metrics`);
      const text = await res.text();
      const m = /^sse_events_sent_total\{route="\/sse\/test"\} (\d+)/m.exec(text);
      expect(m !== null && Number(m[1]) >= 23, `sse_events_sent_total: ${m?.[1]}`);
    },
  ],
  [
    'the observability profile: Prometheus scrapes the server, loads the alert rules, no target down',
    async () => {
      const up = await compose(
        ['--profile', 'observability', 'up', '-d', 'prometheus'],
        5 * 60_000,
      );
      expect(up.code === 0, `prometheus failed to start:\n${up.stderr.slice(-2000)}`);
      const prom = `http://127.0.0.1:${promPort}`;
      await until('Prometheus to report the server target up', 90_000, async () => {
        const res = await fetch(
          `${prom}/api/v1/query?query=${encodeURIComponent('up{job="http-sse-server"}')}`,
        );
        const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
        return body.data.result[0]?.value[1] === '1' ? true : undefined;
      });
      const rules = (await (await fetch(`${prom}/api/v1/rules?type=alert`)).json()) as {
        data: { groups: { name: string; rules: { name: string; health: string }[] }[] };
      };
      const loaded = rules.data.groups.flatMap((g) => g.rules);
      expect(
        loaded
          .map((r) => r.name)
          .sort()
          .join(',') === ALERT_NAMES.toSorted().join(','),
        `alert rules loaded: ${JSON.stringify(loaded.map((r) => r.name))}`,
      );
      expect(
        loaded.every((r) => r.health !== 'err'),
        `a rule fails to evaluate: ${JSON.stringify(loaded)}`,
      );
      const targets = (await (await fetch(`${prom}/api/v1/targets?state=active`)).json()) as {
        data: { activeTargets: { labels: { job: string }; health: string; lastError: string }[] };
      };
      const active = targets.data.activeTargets;
      expect(
        !active.some((t) => t.labels.job === 'http-sse-client'),
        'a scrape job for the one-shot client',
      );
      const down = active.filter((t) => t.health === 'down');
      expect(down.length === 0, `targets down: ${JSON.stringify(down)}`);
    },
  ],
  [
    'the loadtest profile runs the harness against the server',
    async () => {
      mkdirSync(resultsDir, { recursive: true });
      const build = await compose(['--profile', 'loadtest', 'build', 'loadtest'], 15 * 60_000);
      expect(build.code === 0, `loadtest build failed:\n${build.stderr.slice(-3000)}`);
      const r = await compose(
        [
          '--profile',
          'loadtest',
          'run',
          '--rm',
          'loadtest',
          '--scenario',
          'fanout',
          '--subscribers',
          '5',
          '--rate',
          '10',
          '--duration',
          '2',
          '--no-progress',
          '--json',
        ],
        10 * 60_000,
      );
      // 3: harness-limited (a busy machine); the figures are still checked.
      expect(r.code === 0 || r.code === 3, `loadtest exited ${r.code}: ${r.stderr.slice(-2000)}`);
      const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        figures: Record<string, number>;
      };
      expect(report.figures.published > 0, `published ${report.figures.published}`);
      expect(report.figures.lost === 0 && report.figures.duplicated === 0, 'events lost');
      // The target came from LOADTEST_URL in compose, and the reports landed in the bind mount,
      // readable on the host.
      expect(/server:24856/.test(r.stderr), 'the harness did not target http://server:24856');
      const written = readdirSync(resultsDir).filter((f) => f.startsWith('fanout-'));
      expect(written.length >= 3, `no reports in ${resultsDir}: ${written.join(', ')}`);
      for (const f of written) readFileSync(join(resultsDir, f));
    },
  ],
  [
    'docker compose stop ends an open stream cleanly (graceful shutdown in the container)',
    async () => {
      const id = (await compose(['ps', '-q', 'server'])).stdout.trim();
      const stream = run(
        'curl',
        ['-sS', '-N', '--max-time', '60', `${base}/sse/test?count=1000&interval_ms=100`],
        70_000,
      );
      await sleep(1500);
      const stop = await compose(['stop', 'server'], 60_000);
      expect(stop.code === 0, `compose stop failed: ${stop.stderr}`);
      const r = await stream;
      expect(r.code === 0, `the stream did not end cleanly: curl exit ${r.code} ${r.stderr}`);
      expect(
        /\nretry: \d+\n\n$/.test(r.stdout),
        `stream tail: ${JSON.stringify(r.stdout.slice(-120))}`,
      );
      const code = await run('docker', ['inspect', '-f', '{{.State.ExitCode}}', id], 10_000);
      expect(code.stdout.trim() === '0', `server container exit code ${code.stdout.trim()}`);
      const logs = await compose(['logs', '--no-color', 'server']);
      expect(logs.stdout.includes('"event":"stopped"'), 'no "stopped" log line');
    },
  ],
];

steps.push(
  ...scaleSteps({
    root,
    env,
    tlsPort,
    plainPort,
    promPort,
    token: env.SSE_PUBLISH_TOKEN,
    run,
    compose,
    until,
    expect,
    log,
  }),
);
// E2E_ONLY=text runs only the steps whose name contains it (e.g. E2E_ONLY=scale while working on
// one profile); CI runs them all.
const only = process.env.E2E_ONLY;
const selected = only ? steps.filter(([name]) => name.includes(only)) : steps;

let passed = 0;
let failed = 0;
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    log(`cleaning up: docker compose -p ${project} down -v --rmi local`);
    const r = await compose(
      // --rmi local: the server and client images are named after this run's project
      [
        '--profile',
        'observability',
        '--profile',
        'loadtest',
        '--profile',
        'scale',
        'down',
        '-v',
        '--remove-orphans',
        '--rmi',
        'local',
      ],
      180_000,
    );
    if (r.code !== 0) log(`cleanup failed: ${r.stderr.slice(-1000)}`);
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}
const watchdog = setTimeout(() => {
  log(`the whole run exceeded ${TOTAL_TIMEOUT_MS / 60_000} minutes`);
  cleanup().finally(() => process.exit(1));
}, TOTAL_TIMEOUT_MS);
watchdog.unref();

const started = Date.now();
try {
  const docker = await run('docker', ['compose', 'version'], 30_000);
  expect(docker.code === 0, `docker compose is not available: ${docker.stderr}`);
  for (const [name, step] of selected) {
    const t0 = Date.now();
    try {
      await step();
      passed++;
      log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed++;
      log(`FAIL ${name}: ${(err as Error).message}`);
      if (passed === 0) break; // nothing else can work without a running server
    }
  }
} catch (err) {
  failed++;
  log(`FAIL ${(err as Error).message}`);
} finally {
  await cleanup();
}
log(`finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
