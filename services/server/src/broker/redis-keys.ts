// The Redis broker's key names, one place for both layouts:
//   single / Sentinel   stream <p><channel>, idempotency record <p>#idem:<channel>#<key>,
//                       channel registry <p>#channels, presence <p>#replicas, <p>#presence:<id>
//   Cluster             every per-channel key carries the channel as its hash tag, so that the
//                       publish script's keys (stream, record) share one slot:
//                       stream <p>{<channel>}, record <p>#idem:{<channel>}#<key>;
//                       the directory's keys share the tag {#} (one slot, which no channel's
//                       tag can hash to by name): <p>{#}channels, <p>{#}replicas,
//                       <p>{#}presence:<id>
// Keys that are not streams hold a `#`, which no channel name does: they never collide with a
// stream key. (The prefix holds no braces in cluster mode: the config refuses them.)

export class RedisKeys {
  readonly prefix: string;
  readonly cluster: boolean;

  constructor(prefix: string, cluster: boolean) {
    this.prefix = prefix;
    this.cluster = cluster;
  }

  stream(channel: string): string {
    return this.cluster ? `${this.prefix}{${channel}}` : this.prefix + channel;
  }

  /** The channel of a stream key (as XREAD names it), or null for another key. */
  channelOf(key: string): string | null {
    if (!key.startsWith(this.prefix)) return null;
    const rest = key.slice(this.prefix.length);
    if (!this.cluster) return rest;
    return rest.startsWith('{') && rest.endsWith('}') ? rest.slice(1, -1) : null;
  }

  record(channel: string, key: string): string {
    return this.cluster
      ? `${this.prefix}#idem:{${channel}}#${key}`
      : `${this.prefix}#idem:${channel}#${key}`;
  }

  private shared(name: string): string {
    return this.cluster ? `${this.prefix}{#}${name}` : `${this.prefix}#${name}`;
  }

  /** The sorted set of channels with history, scored by when their stream key expires. */
  get registry(): string {
    return this.shared('channels');
  }

  get replicas(): string {
    return this.shared('replicas');
  }

  /** The presence hash of a replica ('' gives the prefix the directory's script appends to). */
  presence(replica: string): string {
    return this.shared(`presence:${replica}`);
  }
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

/** CRC16-CCITT (XModem), Redis Cluster's key hash. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

/** The cluster slot of a key: its hash tag ({...}, when not empty) or the whole key. */
export function keySlot(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(hashed, 'utf8')) & 16383;
}
