// Property (fast-check) of the several-channel cursor, at the hub with the memory broker and no
// sockets: random interleavings of publishes on N channels and a random cut point; a stream that
// resumes from the cursor of the last event before the cut gets, on every channel, exactly the
// events after that channel's position: no gap, no duplicate, in order. Also the cursor codec.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryBroker } from '../../services/server/src/broker/memory-broker.ts';
import {
  channelHash,
  cursorText,
  decodeCursor,
  encodeEntry,
  resumePositions,
} from '../../services/server/src/wire/stream-cursor.ts';
import { FakeStream, hubOn, ScriptedBroker, settle } from '../helpers/core-fakes.ts';

test('the cursor codec: every position back, any base, any id', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z0-9.]{1,20}$/), { minLength: 1, maxLength: 32 }),
      fc.integer({ min: 0, max: 2 ** 44 }),
      fc.array(
        fc.record({
          ms: fc.integer({ min: 0, max: 2 ** 44 }),
          seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        }),
        { minLength: 32, maxLength: 32 },
      ),
      (names, base, ids) => {
        const entries = names.map((n, i) => encodeEntry(channelHash(n), ids[i]!, base));
        const decoded = decodeCursor(cursorText(base, entries));
        assert.ok(decoded !== null);
        names.forEach((n, i) => {
          assert.deepEqual(decoded.get(channelHash(n)), { ms: ids[i]!.ms, seq: ids[i]!.seq });
        });
      },
    ),
  );
});

test('the cursor at 32 channels near now: small, well within the 16 KiB header bound', () => {
  const now = Date.now();
  const names = Array.from({ length: 32 }, (_, i) => `user.4242.channel-${i}`);
  const entries = names.map((n, i) =>
    encodeEntry(channelHash(n), { ms: now - i * 1000, seq: i }, now),
  );
  const text = cursorText(now, entries);
  assert.ok(text.length < 400, `${text.length} characters`);
});

function setup(channels: number) {
  const broker = new MemoryBroker({
    historySize: 10_000,
    historyMaxBytes: 1 << 30,
    historyTtlMs: 3_600_000,
    maxChannels: 1000,
    idempotency: { ttlMs: 60_000, maxKeys: 100, maxBytes: 1 << 20, leaseMs: 1000 },
  });
  const hub = hubOn(broker);
  const names = Array.from({ length: channels }, (_, i) => `p${i}`);
  return { broker, hub, names };
}

interface Got {
  channel: string;
  data: string;
  id: string;
}

const read = (s: FakeStream): Got[] =>
  s.events.map((e) => {
    const { channel, data } = JSON.parse(e.data) as { channel: string; data: string };
    return { channel, data, id: e.id! };
  });

test('property: a resume from any cut continues every channel exactly', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 8 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 60 }),
      fc.array(fc.nat(), { maxLength: 60 }),
      fc.nat(),
      async (n, before, during, cut) => {
        const { broker, hub, names } = setup(n);
        const published = new Map<string, string[]>(names.map((c) => [c, []]));
        const send = async (pick: number, tag: string) => {
          const channel = names[pick % n]!;
          const data = `${tag}${published.get(channel)!.length}`;
          published.get(channel)!.push(data);
          await broker.publish(channel, [{ data }]);
        };
        const first = new FakeStream();
        await hub.subscribeMany(first.conn, names, new Map(), null, {});
        for (const p of before) {
          await send(p, 'a');
          if (p % 3 === 0) await settle(1);
        }
        await settle(2);
        const got = read(first);
        const kept = got.slice(0, 1 + (cut % got.length));
        first.close();
        for (const p of during) await send(p, 'b');
        const { positions, malformed } = resumePositions(names, kept.at(-1)!.id);
        assert.equal(malformed, false);
        const second = new FakeStream();
        await hub.subscribeMany(second.conn, names, positions, null, {});
        await settle(3);
        const all = [...kept, ...read(second)];
        for (const channel of names) {
          assert.deepEqual(
            all.filter((e) => e.channel === channel).map((e) => e.data),
            published.get(channel),
            channel,
          );
        }
        second.close();
        hub.close();
        await broker.close();
      },
    ),
    { numRuns: 100 },
  );
});

type Step =
  | { kind: 'append'; channel: number }
  | { kind: 'deliver'; channel: number; n: number }
  | { kind: 'answer' }
  | { kind: 'tick' };

const steps = (n: number): fc.Arbitrary<Step[]> =>
  fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('append' as const), channel: fc.nat({ max: n - 1 }) }),
      fc.record({
        kind: fc.constant('deliver' as const),
        channel: fc.nat({ max: n - 1 }),
        n: fc.integer({ min: 1, max: 4 }),
      }),
      fc.constant({ kind: 'answer' as const }),
      fc.constant({ kind: 'tick' as const }),
    ),
    { maxLength: 40 },
  );

test('property: with live delivery lagging the record (as a Redis reader may), a resume is still exact', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 6 }).chain((n) => fc.tuple(fc.constant(n), steps(n), steps(n))),
      fc.nat(),
      async ([n, before, after], cut) => {
        const broker = new ScriptedBroker();
        const hub = hubOn(broker);
        const names = Array.from({ length: n }, (_, i) => `q${i}`);
        const published = new Map<string, string[]>(names.map((c) => [c, []]));
        const append = (i: number) => {
          const channel = names[i]!;
          const data = String(published.get(channel)!.length);
          published.get(channel)!.push(data);
          broker.append([{ data }], channel);
        };
        const run = async (list: Step[]) => {
          for (const s of list) {
            if (s.kind === 'append') append(s.channel);
            else if (s.kind === 'deliver') broker.deliver(names[s.channel]!, s.n);
            else if (s.kind === 'answer') broker.answerReplays();
            else await settle(1);
          }
        };
        const first = new FakeStream();
        await hub.subscribeMany(first.conn, names, new Map(), null, {});
        append(0); // at least one event to cut after
        await run(before);
        for (const c of names) broker.deliver(c);
        await settle(2);
        const got = read(first);
        const kept = got.slice(0, 1 + (cut % got.length));
        first.close();
        const { positions } = resumePositions(names, kept.at(-1)!.id);
        const second = new FakeStream();
        let started = false;
        const resuming = hub.subscribeMany(second.conn, names, positions, null, {}).then(() => {
          started = true;
        });
        await run(after);
        // The replays are asked for once the joins settle: answer until the stream has started.
        for (let i = 0; i < 20 && !started; i++) {
          broker.answerReplays();
          await settle(1);
        }
        await resuming;
        for (const c of names) broker.deliver(c);
        await settle(4);
        const all = [...kept, ...read(second)];
        for (const channel of names) {
          assert.deepEqual(
            all.filter((e) => e.channel === channel).map((e) => e.data),
            published.get(channel),
            channel,
          );
        }
        second.close();
        hub.close();
      },
    ),
    { numRuns: 150 },
  );
});
