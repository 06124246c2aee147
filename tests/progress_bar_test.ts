/** The terminal progress bar: what it draws, when, and that it stays silent off a terminal or when quiet. */

import assert from "node:assert/strict";
import { ProgressBar } from "../mod.ts";
import { formatDuration, formatRate } from "../src/progress_bar.ts";

function sink(terminal: boolean) {
  const written: string[] = [];
  return {
    written,
    isTerminal: () => terminal,
    writeSync: (b: Uint8Array) => {
      written.push(new TextDecoder().decode(b));
      return b.length;
    },
  };
}

Deno.test("progress bar: fraction, throughput and ETA from a clock", () => {
  let now = 0;
  const out = sink(true);
  const bar = new ProgressBar("copy", { sink: out, now: () => now, width: 10 });
  now = 2000; // 2 s for a quarter of 400 MB
  bar.update(1, 4, 100e6);
  assert.equal(out.written.at(-1), "\rcopy [###-------]  25% 50.0 MB/s ETA 6s");
  now = 2050; // within the redraw interval: nothing new
  bar.update(2, 4, 200e6);
  assert.equal(out.written.length, 1);
  now = 8000;
  bar.update(4, 4, 400e6); // completion always draws
  assert.equal(out.written.at(-1), "\rcopy [##########] 100% 50.0 MB/s ETA 0s");
  bar.done();
  assert.equal(out.written.at(-1), "\n");
});

Deno.test("progress bar: nothing off a terminal or when quiet", () => {
  for (const [terminal, quiet] of [[false, false], [true, true]]) {
    const out = sink(terminal);
    const bar = new ProgressBar("x", { sink: out, quiet });
    assert.equal(bar.visible, false);
    bar.update(1, 2, 10);
    bar.counters()({
      outerTotal: 2,
      outerDone: 2,
      chunksTouched: 0,
      chunksStored: 0,
      bytesRead: 0,
      readOps: 0,
      bytesDecoded: 5,
      bytesWritten: 0,
    });
    bar.done();
    assert.deepEqual(out.written, []);
  }
});

Deno.test("rates and durations", () => {
  assert.equal(formatRate(0), "– B/s");
  assert.equal(formatRate(999), "999.0 B/s");
  assert.equal(formatRate(1.5e9), "1.50 GB/s");
  assert.equal(formatDuration(NaN), "–");
  assert.equal(formatDuration(42.4), "42s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(3725), "1h02m");
});
