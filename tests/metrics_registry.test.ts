/** The metrics registry's counters: one count per label set, rendered in the order the sets first came. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Counter } from "../src/metrics/registry.ts";

test("Counter keeps one count per label set, sets that share a first value apart, in the order they first came", () => {
  const published = new Counter("published_total", "Messages published.");
  published.inc({ from: "hub", to: "fan0" });
  published.inc({ from: "hub", to: "fan1" }, 2);
  published.inc({ from: "fan0", to: "hub" });
  published.inc({ from: "hub", to: "fan0" }, 3);
  assert.deepEqual(published.samples(), [
    'published_total{from="hub",to="fan0"} 4',
    'published_total{from="hub",to="fan1"} 2',
    'published_total{from="fan0",to="hub"} 1',
  ]);

  const plain = new Counter("plain_total", "No labels.");
  plain.inc();
  plain.inc(undefined, 4);
  assert.deepEqual(plain.samples(), ["plain_total 5"]);
});
