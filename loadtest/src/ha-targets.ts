// Our server on each Redis layout at once, for comparing them with the load-test harness in one
// session (the bench's ours-redis, ours-sentinel, ours-sentinel-wait1 and ours-cluster: each its
// own redis-server, Sentinel set or Cluster, on random ports), until SIGINT or SIGTERM:
//   node loadtest/src/ha-targets.ts [NAME ...]      prints "NAME URL" per server once all are up
// The servers take the bench's publish token (bench-token): run the harness with
// SSE_PUBLISH_TOKEN=bench-token. docs/PERFORMANCE.md has the comparison's commands.
import { BENCH_TOKEN, benchTargets, type RunningTarget } from './bench-targets.ts';

const ours = benchTargets('ha').filter((t) => t.name.startsWith('ours-'));
const wanted = process.argv.slice(2);
const unknown = wanted.filter((n) => !ours.some((t) => t.name === n));
if (unknown.length > 0) {
  process.stderr.write(
    `ha-targets: unknown ${unknown.join(', ')} (${ours.map((t) => t.name).join(', ')})\n`,
  );
  process.exit(2);
}
const chosen = wanted.length > 0 ? ours.filter((t) => wanted.includes(t.name)) : ours;
const running: RunningTarget[] = [];
let stopping = false;
const stopAll = async (code: number) => {
  if (stopping) return;
  stopping = true;
  for (const r of running) await r.stop().catch(() => {});
  process.exit(code);
};
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));
try {
  for (const t of chosen) {
    const r = await t.start();
    running.push(r);
    process.stdout.write(`${t.name} ${r.base}\n`);
  }
  process.stderr.write(
    `ha-targets: ${running.length} servers up (publish token ${BENCH_TOKEN}); Ctrl-C stops them\n`,
  );
} catch (err) {
  process.stderr.write(`ha-targets: ${(err as Error).message}\n`);
  await stopAll(1);
}
