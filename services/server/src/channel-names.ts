// The channel-name rule, and channel patterns of the auth config (auth.publicChannels) and of
// tokens' `sse` claims. A channel name is 1 to 128 of A-Z a-z 0-9 . _ : -. A channel
// name matches itself; a name ending in `*` matches every channel that starts with what comes
// before the `*` (`orders.*`, `user.42.*`, and `*` for every channel). Nothing else is special: a
// `*` anywhere else is an ordinary character (and no channel name holds one, so it matches
// nothing).

export const CHANNEL_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/** True for a pattern the config accepts: a valid channel name, or one (or nothing) then `*`. */
export function isValidPattern(pattern: string): boolean {
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    return prefix === '' || CHANNEL_NAME.test(prefix);
  }
  return CHANNEL_NAME.test(pattern);
}

/** The reason a configured pattern is refused, for config errors. */
export const PATTERN_RULE =
  'a channel pattern is a channel name (1 to 128 of A-Z a-z 0-9 . _ : -), or such a name (or nothing) followed by one "*"';

/** True when `pattern` covers `channel` (no validation: an odd pattern just matches less). */
export function patternMatches(pattern: string, channel: string): boolean {
  const last = pattern.length - 1;
  if (last >= 0 && pattern.charCodeAt(last) === 42 /* '*' */) {
    return channel.length >= last && channel.startsWith(pattern.slice(0, last));
  }
  return pattern === channel;
}

/**
 * Patterns from a token's claim: true when one covers `channel`. The claim must be an array of
 * strings, else 'malformed' (every entry is checked, whether or not an earlier one matched).
 */
export function claimCovers(claim: unknown, channel: string): boolean | 'malformed' {
  if (!Array.isArray(claim)) return 'malformed';
  let covered = false;
  for (const pattern of claim) {
    if (typeof pattern !== 'string') return 'malformed';
    if (!covered && patternMatches(pattern, channel)) covered = true;
  }
  return covered;
}

/** A fixed list of patterns (the config's), compiled once: exact names in a set, then prefixes. */
export class ChannelPatterns {
  private readonly exact: ReadonlySet<string>;
  private readonly prefixes: readonly string[];
  private readonly all: boolean;

  constructor(patterns: readonly string[]) {
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const p of patterns) {
      if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
      else exact.add(p);
    }
    this.exact = exact;
    this.prefixes = prefixes;
    this.all = prefixes.includes('');
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.prefixes.length === 0;
  }

  matches(channel: string): boolean {
    if (this.all || this.exact.has(channel)) return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }
}
