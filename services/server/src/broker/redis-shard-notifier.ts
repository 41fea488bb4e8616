// One connection to one Redis Cluster master in sharded Pub/Sub mode: the cluster reader's
// doorbell for the streams that master holds (redis-cluster-reader.ts). The publish script ends
// with `SPUBLISH <stream key> <last id>` (a shard channel lives in its name's slot, so it goes to
// the master of the stream's slot and to nobody else); this connection `SSUBSCRIBE`s to the stream
// keys of the joined channels that master serves, one command per key (one slot each).
//
// It speaks RESP2 on a bare socket rather than through ioredis, because a master that loses a slot
// (resharding, failover) unsubscribes its clients from that slot's shard channels by itself
// (`sunsubscribe` pushes nobody asked for), which ioredis would take for the answer to a command
// of its own. Here every reply is matched against what was asked, in order, and an unasked
// `sunsubscribe` is reported as such. The connection is not reconnected: the reader makes a new
// one and reads each channel again from its cursor.
import net from 'node:net';

export interface NotifierEvents {
  /** A publish on the stream `key`. */
  message(key: string): void;
  /** The master dropped the subscription by itself (the key's slot moved away). */
  unsubscribed(key: string): void;
  /** The connection is gone (closed, failed, or a reply out of order): make another. */
  closed(): void;
}

type Reply = string | number | null | Error | Reply[];

interface Pending {
  readonly kind: 'auth' | 'ssubscribe' | 'sunsubscribe';
  readonly key: string;
  resolve(): void;
  reject(err: Error): void;
}

const CONNECT_TIMEOUT_MS = 2000;
/** Longest reply or push kept in the read buffer before the connection is dropped (16 MiB). */
const MAX_BUFFERED = 16 * 1024 * 1024;

/** The RESP2 value at `buf[pos..]` and where it ends, or null when incomplete. */
function parse(buf: Buffer, pos: number): [Reply, number] | null {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 0x2b: // +
      return [line, next];
    case 0x2d: // -
      return [new Error(line), next];
    case 0x3a: // :
      return [Number(line), next];
    case 0x24: {
      // $
      const len = Number(line);
      if (len < 0) return [null, next];
      if (next + len + 2 > buf.length) return null;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case 0x2a: {
      // *
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parse(buf, at);
        if (item === null) return null;
        items.push(item[0]);
        at = item[1];
      }
      return [items, at];
    }
    default:
      throw new Error(`unexpected RESP type byte ${type}`);
  }
}

/** A command as RESP2 (an array of bulk strings). */
function encode(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

export class ShardNotifier {
  /** `host:port` of the master, as ioredis's slot map names it. */
  readonly node: string;
  /** Keys whose subscription the master confirmed (and did not drop since). */
  readonly subscribed = new Set<string>();
  private readonly socket: net.Socket;
  private readonly on: NotifierEvents;
  private readonly pending: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private closedFlag = false;
  readonly ready: Promise<void>;

  constructor(node: string, password: string, on: NotifierEvents) {
    this.node = node;
    this.on = on;
    const at = node.lastIndexOf(':');
    const host = node.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    this.socket = net.connect({ host, port: Number(node.slice(at + 1)) });
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 10_000);
    this.socket.on('data', (chunk: Buffer) => this.received(chunk));
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`connect to ${node} timed out`));
        this.close();
      }, CONNECT_TIMEOUT_MS);
      this.socket.once('connect', () => {
        clearTimeout(timer);
        if (password === '') resolve();
        else this.send(['AUTH', password], 'auth', '').then(resolve, reject);
      });
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`connection to ${node} closed`));
      });
    });
    this.ready.catch(() => {});
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Resolves once the master confirmed the subscription; rejects with its error (MOVED ...). */
  async subscribe(key: string): Promise<void> {
    await this.ready;
    if (this.subscribed.has(key)) return;
    await this.send(['SSUBSCRIBE', key], 'ssubscribe', key);
    this.subscribed.add(key);
  }

  unsubscribe(key: string): void {
    if (!this.subscribed.delete(key) || this.closedFlag) return;
    this.send(['SUNSUBSCRIBE', key], 'sunsubscribe', key).catch(() => {});
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.socket.destroy();
    const gone = new Error(`connection to ${this.node} closed`);
    for (const p of this.pending.splice(0)) p.reject(gone);
    this.subscribed.clear();
    this.on.closed();
  }

  private send(args: string[], kind: Pending['kind'], key: string): Promise<void> {
    if (this.closedFlag) return Promise.reject(new Error(`connection to ${this.node} closed`));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ kind, key, resolve, reject });
      this.socket.write(encode(args));
    });
  }

  private received(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    try {
      for (;;) {
        const item = parse(this.buf, pos);
        if (item === null) break;
        pos = item[1];
        this.handle(item[0]);
        if (this.closedFlag) return;
      }
    } catch {
      this.close();
      return;
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
    if (this.buf.length > MAX_BUFFERED) this.close();
  }

  private handle(reply: Reply): void {
    if (Array.isArray(reply) && typeof reply[0] === 'string') {
      const kind = reply[0];
      const key = typeof reply[1] === 'string' ? reply[1] : '';
      if (kind === 'smessage') {
        this.on.message(key);
        return;
      }
      const head = this.pending[0];
      if (kind === 'sunsubscribe' && !(head?.kind === 'sunsubscribe' && head.key === key)) {
        // Nobody asked: the master gave the key's slot away.
        this.subscribed.delete(key);
        this.on.unsubscribed(key);
        return;
      }
      this.answer(kind, key, null);
      return;
    }
    if (reply instanceof Error) this.answer('error', '', reply);
    else this.answer('ok', '', null);
  }

  /** The reply to the oldest command asked; anything else means the stream is out of step. */
  private answer(kind: string, key: string, err: Error | null): void {
    const head = this.pending.shift();
    if (head === undefined) {
      this.close();
      return;
    }
    if (err !== null) head.reject(err);
    else if (kind === 'ok' ? head.kind === 'auth' : head.kind === kind && head.key === key) {
      head.resolve();
    } else {
      head.reject(new Error(`unexpected reply ${kind} ${key} to ${head.kind} ${head.key}`));
      this.close();
    }
  }
}
