// What docker-compose.yml, the Dockerfiles and the ignore files promise, read from the files
// themselves (npm run test:docker checks the built images and the running stack).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { ROOT } from '../helpers/process.ts';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const { version } = JSON.parse(read('package.json')) as { version: string };

interface Service {
  image?: string;
  build?: { dockerfile: string };
  healthcheck?: { test: string[] };
  volumes?: string[];
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

const OCI_LABELS = ['title', 'description', 'source', 'licenses', 'version'];

/** The LABEL keys and ARG defaults of a Dockerfile's last stage (line continuations joined). */
function lastStage(path: string): { labels: Map<string, string>; args: Map<string, string> } {
  const text = read(path).replace(/\\\n/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const labels = new Map<string, string>();
  const args = new Map<string, string>();
  for (const line of stage.split('\n')) {
    if (line.startsWith('LABEL ')) {
      for (const m of line.matchAll(/([\w.-]+)="([^"]*)"/g)) labels.set(m[1], m[2]);
    }
    const arg = /^ARG (\w+)=(\S+)$/.exec(line);
    if (arg) args.set(arg[1], arg[2]);
  }
  return { labels, args };
}

describe('Dockerfiles', () => {
  for (const path of ['services/server/Dockerfile', 'services/client/Dockerfile']) {
    test(`${path}: OCI labels, the version from package.json`, () => {
      const { labels, args } = lastStage(path);
      for (const key of OCI_LABELS) {
        const value = labels.get(`org.opencontainers.image.${key}`);
        assert.ok(value, `org.opencontainers.image.${key} missing`);
      }
      // the label takes the build argument: the Dockerfile's text is "${VERSION}" (split for lint)
      assert.equal(labels.get('org.opencontainers.image.version'), '$' + '{VERSION}');
      assert.equal(args.get('VERSION'), version, 'ARG VERSION differs from package.json');
      assert.equal(labels.get('org.opencontainers.image.licenses'), 'Apache-2.0');
    });
  }

  test('the server image probes readiness with healthcheck.sh, which it copies', () => {
    const text = read('services/server/Dockerfile');
    assert.match(text, /^COPY services\/server\/healthcheck\.sh /m);
    assert.match(text, /^\s*CMD \["bash", "\/app\/services\/server\/healthcheck\.sh"\]$/m);
    assert.match(read('services/server/healthcheck.sh'), /GET \/readyz /);
  });
});

describe('docker-compose.yml', () => {
  test('server and client images are named per project (no fixed `image:` to reuse)', () => {
    for (const name of ['server', 'client']) {
      assert.equal(compose.services[name].image, undefined, `${name} has image:`);
      assert.ok(compose.services[name].build, `${name} has no build:`);
    }
  });

  test('the server healthcheck is the cheap readiness probe, not a node process', () => {
    assert.deepEqual(compose.services.server.healthcheck?.test, [
      'CMD',
      'bash',
      '/app/services/server/healthcheck.sh',
    ]);
  });

  test('Prometheus is pinned to v3.13.0 and gets the alert rules; no job for the one-shot client', () => {
    const prometheus = compose.services.prometheus;
    assert.equal(prometheus.image, 'prom/prometheus:v3.13.0');
    assert.ok(prometheus.volumes?.includes('./config/alerts.yml:/etc/prometheus/alerts.yml:ro'));
    const config = parse(read('config/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: { job_name: string }[];
    };
    assert.deepEqual(config.rule_files, ['alerts.yml']);
    assert.ok(!config.scrape_configs.some((j) => j.job_name === 'http-sse-client'));
  });
});

test('.env is git-ignored and kept out of the Docker build context', () => {
  assert.ok(read('.gitignore').split('\n').includes('.env'));
  assert.ok(read('.dockerignore').split('\n').includes('.env'));
});
