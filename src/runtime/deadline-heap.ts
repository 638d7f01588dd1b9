/**
 * A min-heap of (deadline, id): the earliest approval deadline of the proposals that wait for a
 * person without an actor. Entries are never removed in the middle; callers skip stale ones
 * (an id no longer waiting, or waiting with another deadline) as they pop them.
 */
export interface DeadlineEntry {
  id: string;
  deadline: number;
}

export class DeadlineHeap {
  private readonly items: DeadlineEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  push(entry: DeadlineEntry): void {
    const a = this.items;
    a.push(entry);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.deadline <= a[i]!.deadline) break;
      [a[parent], a[i]] = [a[i]!, a[parent]!];
      i = parent;
    }
  }

  peek(): DeadlineEntry | undefined {
    return this.items[0];
  }

  pop(): DeadlineEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.deadline < a[m]!.deadline) m = l;
        if (r < a.length && a[r]!.deadline < a[m]!.deadline) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
