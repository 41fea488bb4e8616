// Redis Sentinel and Redis Cluster on real processes for tests: the process helpers live in
// loadtest/src/redis-ha.ts (the fan-out bench starts the same ones), re-exported here.
import { spawnSync } from 'node:child_process';

export {
  type RedisCluster,
  type SentinelSet,
  startRedisCluster,
  startSentinelSet,
} from '../../loadtest/src/redis-ha.ts';

/** Why Sentinel or Cluster tests cannot run here, or null when the tools are installed. */
export function missingRedisHa(): string | null {
  for (const tool of ['redis-server', 'redis-sentinel', 'redis-cli']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.status !== 0)
      return `${tool} is not installed (apt-get install redis-server redis-sentinel)`;
  }
  return null;
}
