import { open } from "../mod.ts";
async function tryit(label: string, f: () => Promise<unknown>) {
  try { await f(); console.log(label, "NO ERROR"); } catch (e) { console.log(label, "=>", (e as Error).constructor.name, ":", (e as Error).message); }
}
// corrupt zstd chunk: flip bytes in middle
const f = "/tmp/cx/plain/c/0/0/0";
const b = await Deno.readFile(f); for (let i = 10; i < 20; i++) b[i] ^= 0xff; await Deno.writeFile(f, b);
await tryit("corrupt zstd", async () => { using i = await open("/tmp/cx/plain"); using v = await i.scan().collect(); });
await tryit("corrupt zstd explain", async () => { using i = await open("/tmp/cx/plain"); console.log(await i.scan().explain()); });
const s = "/tmp/cx/shard/c/0/0/0";
const sb = await Deno.readFile(s); await Deno.writeFile(s, sb.subarray(0, sb.length >> 1));
await tryit("truncated shard", async () => { using i = await open("/tmp/cx/shard"); using v = await i.scan().collect(); });
await tryit("truncated shard explain", async () => { using i = await open("/tmp/cx/shard"); await i.scan().explain(); });
const s2 = "/tmp/cx/shard2/c/0/0/0";
const sb2 = await Deno.readFile(s2); sb2[sb2.length - 10] ^= 0x01; await Deno.writeFile(s2, sb2);
await tryit("crc shard", async () => { using i = await open("/tmp/cx/shard2"); using v = await i.scan().collect(); });
const s3 = "/tmp/cx/shard3/c/0/0/0";
const sb3 = await Deno.readFile(s3); for (let i = 5; i < 40; i++) sb3[i] ^= 0x5a; await Deno.writeFile(s3, sb3);
await tryit("corrupt inner chunk", async () => { using i = await open("/tmp/cx/shard3"); using v = await i.scan().collect(); });
