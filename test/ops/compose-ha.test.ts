// What docker-compose.ha.yml (the scale profile on Redis Sentinel) promises, read from the files
// without Docker: the same Redis image as the scale profile, a replica of the compose file's redis,
// three sentinels watching it with a quorum of two, and server replicas whose environment the
// server's own config loader takes as a Sentinel target (REDIS_URL emptied: exactly one of the
// two). The stack itself: README "Scaling out" gives the commands.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { redisTarget } from '../../services/server/src/broker/redis-connection.ts';
import { loadServerConfig } from '../../services/server/src/config.ts';
import { ROOT } from '../helpers/process.ts';

interface Service {
  image?: string;
  profiles?: string[];
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
}
type Compose = { services: Record<string, Service> };

const read = (path: string) =>
  parse(readFileSync(join(ROOT, path), 'utf8'), { merge: true }) as Compose;
const base = read('docker-compose.yml');
const ha = read('docker-compose.ha.yml');
const SENTINELS = ['sentinel-1', 'sentinel-2', 'sentinel-3'];

/** ${VAR:-default} as compose resolves it with VAR unset. */
const resolved = (value: string) => value.replace(/\$\{\w+:-([^}]*)\}/g, '$1');

describe('docker-compose.ha.yml', () => {
  test('the same Redis image as the scale profile; a replica of its redis; everything under the scale profile', () => {
    const image = base.services.redis!.image;
    assert.equal(image, 'redis:7-bookworm');
    for (const name of ['redis-replica', ...SENTINELS]) {
      assert.equal(ha.services[name]?.image, image, `${name}: image`);
      assert.deepEqual(ha.services[name]?.profiles, ['scale'], `${name}: profiles`);
    }
    const replicaOf = ha.services['redis-replica']!.command!.join(' ');
    assert.match(replicaOf, /--replicaof redis 6379/);
  });

  test('three sentinels watch the compose redis as mymaster with a quorum of two, from a config they may rewrite', () => {
    for (const name of SENTINELS) {
      const script = ha.services[name]!.command!.join(' ');
      assert.match(script, /sentinel monitor mymaster redis 6379 2/);
      assert.match(script, /sentinel resolve-hostnames yes/);
      assert.match(script, /--sentinel/);
      assert.match(script, /cat > \/tmp\/sentinel\.conf/);
    }
  });

  test('both server replicas take the sentinels as their target, after the sentinels are up', () => {
    for (const name of ['replica-1', 'replica-2']) {
      const service = ha.services[name]!;
      for (const s of SENTINELS)
        assert.equal(service.depends_on?.[s]?.condition, 'service_healthy');
      const env: Record<string, string> = {};
      // The scale profile's environment, overlaid by this file's (compose merges the mappings).
      const inBase = (base.services[name] as Service & { environment?: Record<string, string> })
        .environment;
      for (const [k, v] of Object.entries({ ...inBase, ...service.environment })) {
        env[k] = resolved(String(v));
      }
      const config = loadServerConfig(env);
      assert.deepEqual(redisTarget(config.broker), {
        kind: 'sentinel',
        sentinels: SENTINELS.map((host) => ({ host, port: 26379 })),
        name: 'mymaster',
        sentinelPassword: '',
        password: '',
      });
      assert.equal(config.broker.redis.waitReplicas, 0);
    }
  });
});
