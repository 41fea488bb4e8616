// One process of a replay storm (see replay-storm.ts): opens its share of raw connections at once,
// sends each the same resume request and checks that each gets 200 and exactly the expected ids,
// in order, with no reset. Reports one outcome per connection to the parent over IPC.
import net from 'node:net';
import type { StormJob, StormOutcome } from './replay-storm.ts';

function resume(job: StormJob, deadline: number): Promise<StormOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(job.port, '127.0.0.1');
    let status = 0;
    let buf = '';
    let events = 0;
    let done = false;
    const finish = (why: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, events, failure: why });
    };
    const timer = setTimeout(
      () => finish(`timed out after ${events} events`),
      Math.max(0, deadline - Date.now()),
    );
    socket.on('connect', () => socket.write(job.request));
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (status === 0) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf)?.[1] ?? 0);
        if (status !== 200) {
          finish(`status ${status}: ${buf.slice(end + 4, end + 204)}`);
          return;
        }
        buf = buf.slice(end + 4);
      }
      let from = 0;
      for (;;) {
        const end = buf.indexOf('\n\n', from);
        if (end < 0) break;
        const block = buf.slice(from, end);
        from = end + 2;
        if (block.includes('event: reset\n')) {
          finish(`a reset after ${events} events: ${block.slice(0, 200)}`);
          return;
        }
        const at = block.lastIndexOf('\nid: ');
        if (at < 0) continue; // retry line, comment
        const id = block.slice(at + 5);
        if (id !== job.expected[events]) {
          finish(`event ${events}: id ${id}, expected ${job.expected[events]}`);
          return;
        }
        events++;
        if (events === job.expected.length) {
          finish(null);
          return;
        }
      }
      buf = buf.slice(from);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`socket error ${err.code}`));
    socket.on('close', () => finish(`closed by the server after ${events} events`));
  });
}

process.once('message', async (job: StormJob) => {
  const deadline = Date.now() + job.timeoutMs;
  const outcomes = await Promise.all(
    Array.from({ length: job.clients }, () => resume(job, deadline)),
  );
  process.send!(outcomes, () => process.exit(0));
});
