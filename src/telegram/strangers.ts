/**
 * What strangers may cost: at most one reply (and one journal line) per key per hour, from a
 * table of bounded size whose insertion order is time order, so expiry trims from the front and
 * each stranger's update costs O(1) however many wrote before. When the table is full of keys
 * seen within the hour, strangers get silence: a flood never grows memory or the queue.
 */
export const STRANGER_QUIET_MS = 3_600_000;
export const STRANGER_TABLE_SIZE = 10_000;

/** Admits each key (a chat to reply to, a person to journal) at most once per quiet period. */
export class StrangerLimiter {
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly quietMs = STRANGER_QUIET_MS,
    private readonly capacity = STRANGER_TABLE_SIZE,
  ) {}

  /** Whether `key` may be answered now; when it may, the answer is counted. */
  admit(key: string): boolean {
    const now = this.now();
    this.expire(now);
    const last = this.lastAt.get(key);
    if (last !== undefined && now - last < this.quietMs) return false;
    if (last === undefined && this.lastAt.size >= this.capacity) return false;
    this.lastAt.delete(key);
    this.lastAt.set(key, now);
    return true;
  }

  private expire(now: number): void {
    for (const [key, at] of this.lastAt) {
      if (now - at < this.quietMs) break;
      this.lastAt.delete(key);
    }
  }
}
