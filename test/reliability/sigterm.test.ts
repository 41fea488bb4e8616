// SIGTERM under fan-out load (docs/RELIABILITY.md): exit 0, every stream ends with a clean chunked
// terminator, and every publish acknowledged with 202 reached every subscriber.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { spawnServer } from '../helpers/process.ts';
import { eventually, publish, Subscriber } from '../helpers/server.ts';

describe('SIGTERM under fan-out load', () => {
  test('exit 0, clean ends, nothing acknowledged and lost', async (t) => {
    const srv = await spawnServer({ SSE_SHUTDOWN_TIMEOUT_MS: '5000', SSE_HEARTBEAT_MS: '200' });
    const SUBS = 50;
    const subs: Subscriber[] = [];
    let stop = false;
    try {
      for (let i = 0; i < SUBS; i++) subs.push(new Subscriber(`${srv.base}/sse/channels/load`));
      await Promise.all(subs.map((s) => s.opened));
      const acked: string[] = [];
      let refused = 0;
      // Four publishers in parallel until the server stops answering 202.
      const publisher = async (n: number) => {
        for (let i = 0; !stop; i++) {
          try {
            const res = await publish(srv.base, 'load', { data: `p${n}-${i}` });
            if (res.status === 202) acked.push(...res.body.ids!);
            else refused++;
          } catch {
            refused++;
            return;
          }
        }
      };
      const publishers = [0, 1, 2, 3].map(publisher);
      await eventually(() => acked.length >= 200, 15_000, '200 acknowledged publishes');
      srv.kill('SIGTERM');
      const code = await srv.exited;
      stop = true;
      await Promise.all(publishers);
      await Promise.all(subs.map((s) => s.closed));
      const cleanEnds = subs.filter((s) => s.ended && !s.aborted).length;
      let lost = 0;
      for (const s of subs) {
        const got = new Set(s.events.map((e) => e.id));
        for (const id of acked) if (!got.has(id)) lost++;
      }
      t.diagnostic(
        `${SUBS} subscribers, 4 publishers; acknowledged ${acked.length}, refused after SIGTERM ${refused}; exit ${code}; clean chunked ends ${cleanEnds}/${SUBS}; acknowledged events missing at a subscriber: ${lost}`,
      );
      assert.equal(code, 0);
      assert.equal(cleanEnds, SUBS);
      assert.equal(lost, 0);
      assert.ok(
        subs.every((s) => s.retry !== null),
        'each stream got its retry: line',
      );
    } finally {
      stop = true;
      for (const s of subs) s.close();
      srv.kill('SIGKILL');
      await srv.exited;
    }
  });
});
