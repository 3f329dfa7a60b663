/** Counters, gauges and histograms, rendered in the Prometheus text exposition format (version 0.0.4). */

type Labels = Record<string, string>;

interface Metric {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  /** The sample lines, without HELP and TYPE. */
  samples(): string[];
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(",")}}`;
}

interface Count {
  labels: Labels;
  value: number;
}

/** A counter's label sets, one level per label, keyed by the label's value; the last level holds the counts. */
type CountTree = Map<string, CountTree | Count>;

/** A value per label set (or one without labels) that only goes up. */
export class Counter implements Metric {
  readonly type = "counter";
  readonly name: string;
  readonly help: string;
  #tree: CountTree = new Map();
  /** In the order the label sets first came. */
  #counts: Count[] = [];

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  /**
   * Counts with these labels, always given in the same order. Their values find the count a level each, no key
   * built: this runs per message (a key joined of the values cost a string per call, and its hash).
   */
  inc(labels: Labels = {}, by = 1): void {
    let level = this.#tree;
    let value = "";
    let depth = 0;
    for (const name in labels) {
      if (depth++ > 0) level = (level.get(value) as CountTree | undefined) ?? setLevel(level, value);
      value = labels[name];
    }
    const count = level.get(value) as Count | undefined;
    if (count !== undefined) count.value += by;
    else {
      const created = { labels, value: by };
      level.set(value, created);
      this.#counts.push(created);
    }
  }

  samples(): string[] {
    return this.#counts.map(({ labels, value }) => `${this.name}${labelText(labels)} ${value}`);
  }
}

function setLevel(tree: CountTree, value: string): CountTree {
  const level: CountTree = new Map();
  tree.set(value, level);
  return level;
}

/** A value read when scraped (open streams, pending messages, memory). */
export class Gauge implements Metric {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  #read: () => Array<[Labels, number]>;

  constructor(name: string, help: string, read: () => Array<[Labels, number]>) {
    this.name = name;
    this.help = help;
    this.#read = read;
  }

  samples(): string[] {
    return this.#read().map(([labels, value]) => `${this.name}${labelText(labels)} ${value}`);
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Metric {
  readonly type = "histogram";
  readonly name: string;
  readonly help: string;
  readonly buckets: number[];
  #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(name: string, help: string, buckets: number[]) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
    this.#counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    // A loop, not findIndex: this runs per delivered message, and the callback would be a closure made per call.
    const { buckets } = this;
    for (let index = 0; index < buckets.length; index++) {
      if (value <= buckets[index]) return void this.#counts[index]++;
    }
  }

  samples(): string[] {
    let cumulative = 0;
    const lines = this.buckets.map((bound, index) => {
      cumulative += this.#counts[index];
      return `${this.name}_bucket{le="${bound}"} ${cumulative}`;
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`, `${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines;
  }
}

/** Renders every metric with its HELP and TYPE lines. */
export function exposition(metrics: Metric[]): string {
  const blocks = metrics.map((metric) =>
    [`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} ${metric.type}`, ...metric.samples()].join("\n")
  );
  return blocks.join("\n") + "\n";
}

export type { Metric };
