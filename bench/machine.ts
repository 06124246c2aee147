/**
 * Facts about the machine and the load on it, shared by the benchmarks:
 * CPU ticks from Linux's /proc (to tell how busy other processes kept the
 * cores), the CPU model, and the output of small commands (git).
 * @module
 */

import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** CPU ticks of the machine and of some processes. */
export interface CpuTicks {
  /** Busy ticks of all cores. */
  busy: number;
  /** All ticks of all cores. */
  total: number;
  /** Ticks of the processes asked about (this one, and peer processes). */
  own: number;
}

/** CPU ticks from Linux's /proc: the machine's busy and total, and those of `pids`. */
export async function cpuTicks(
  pids: (number | "self")[] = ["self"],
): Promise<CpuTicks | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const f = (await Deno.readTextFile("/proc/stat")).split("\n")[0].trim().split(/\s+/)
      .slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    let own = 0;
    for (const pid of pids) {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3, state
      own += Number(fields[11]) + Number(fields[12]); // utime, stime
    }
    return { busy: total - f[3] - f[4], total, own };
  } catch {
    return undefined;
  }
}

/** Share of all cores that other processes kept busy between two readings. */
export function otherShare(a: CpuTicks | undefined, b: CpuTicks | undefined): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return Math.max(0, (b.busy - a.busy - (b.own - a.own)) / (b.total - a.total));
}

/** Trimmed standard output of a command run in the repository, or undefined when it fails. */
async function commandText(cmd: string, cmdArgs: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args: cmdArgs, cwd: ROOT, stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** The CPU model name (Linux), or undefined. */
async function cpuModel(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  const info = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return info.match(/model name\s*:\s*(.*)/)?.[1];
}

/** What a report says about the machine: cores, CPU, memory, OS and Deno versions. */
export async function machineFacts() {
  return {
    cores: navigator.hardwareConcurrency,
    cpu: await cpuModel(),
    memory_gb: Math.round(Deno.systemMemoryInfo().total / 2 ** 30 * 1000) / 1000,
    os: `${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    deno: Deno.version,
  };
}

/** The measured tessera revision: short commit, marked when the tree has uncommitted changes. */
export async function revision(): Promise<string | undefined> {
  const commit = await commandText("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = await commandText("git", ["status", "--porcelain"]);
  return commit ? `${commit}${dirty ? " (uncommitted changes)" : ""}` : undefined;
}
