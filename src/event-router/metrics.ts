/** Counters for `GET /metrics` in the Prometheus text format. */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, () => number>();

  private inc(key: string): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
  }

  httpRequest(method: string, status: number): void {
    this.inc(`chatops_http_requests_total{method="${method}",status="${status}"}`);
  }

  signal(source: string, status: string): void {
    this.inc(`chatops_signals_total{source="${source}",status="${status}"}`);
  }

  transition(to: string): void {
    this.inc(`chatops_proposal_transitions_total{to="${to}"}`);
  }

  gauge(name: string, read: () => number): void {
    this.gauges.set(name, read);
  }

  render(): string {
    const lines: string[] = [];
    const byName = new Map<string, string[]>();
    for (const [key, value] of this.counters) {
      const name = key.slice(0, key.indexOf('{'));
      byName.set(name, [...(byName.get(name) ?? []), `${key} ${value}`]);
    }
    for (const [name, rows] of byName) lines.push(`# TYPE ${name} counter`, ...rows);
    for (const [name, read] of this.gauges) lines.push(`# TYPE ${name} gauge`, `${name} ${read()}`);
    return `${lines.join('\n')}\n`;
  }
}
