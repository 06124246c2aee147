/**
 * Synthetic microscopy-like volumes: Gaussian blobs of several sizes over a
 * smooth background, with shot-like noise. Deterministic for a seed.
 * @module
 */

/** A small, fast, seeded PRNG (mulberry32) returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Parameters of one channel's blobs. */
export interface BlobStyle {
  /** Number of blobs in the volume. */
  count: number;
  /** Blob radius (Gaussian sigma) in pixels along y/x, min and max. */
  sigma: [number, number];
  /** Peak brightness above background, min and max. */
  peak: [number, number];
  /** Background level. */
  background: number;
}

/** Styles for up to three channels: nuclei, cytoplasm-like patches, small spots. */
export const CHANNEL_STYLES: BlobStyle[] = [
  { count: 220, sigma: [7, 12], peak: [1500, 4000], background: 300 },
  { count: 90, sigma: [14, 24], peak: [600, 1500], background: 200 },
  { count: 1200, sigma: [1.5, 3], peak: [2000, 9000], background: 120 },
];

const NOISE_TABLE_SIZE = 1 << 16;

function gaussianTable(random: () => number): Float32Array {
  const table = new Float32Array(NOISE_TABLE_SIZE);
  for (let i = 0; i < table.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const a = 2 * Math.PI * random();
    table[i] = r * Math.cos(a);
    table[i + 1] = r * Math.sin(a);
  }
  return table;
}

/**
 * A uint16 volume [z, y, x] for one channel and timepoint. Blobs drift by
 * `drift` pixels per timepoint `t` so time series look alive.
 */
export function synthVolume(
  shape: [number, number, number],
  style: BlobStyle,
  seed: number,
  t = 0,
  drift = 3,
): Uint16Array<ArrayBuffer> {
  const [nz, ny, nx] = shape;
  const signal = new Float32Array(nz * ny * nx);
  const random = rng(seed);
  const zScale = 0.5;
  for (let b = 0; b < style.count; b++) {
    const cz = random() * nz, cy = random() * ny + drift * t * (random() - 0.5);
    const cx = random() * nx + drift * t * (random() - 0.5);
    const s = style.sigma[0] + random() * (style.sigma[1] - style.sigma[0]);
    const sz = s * zScale;
    const peak = style.peak[0] + random() * (style.peak[1] - style.peak[0]);
    const z0 = Math.max(0, Math.floor(cz - 3 * sz)), z1 = Math.min(nz, Math.ceil(cz + 3 * sz));
    const y0 = Math.max(0, Math.floor(cy - 3 * s)), y1 = Math.min(ny, Math.ceil(cy + 3 * s));
    const x0 = Math.max(0, Math.floor(cx - 3 * s)), x1 = Math.min(nx, Math.ceil(cx + 3 * s));
    const wx = new Float32Array(x1 - x0);
    for (let x = x0; x < x1; x++) wx[x - x0] = Math.exp(-((x - cx) ** 2) / (2 * s * s));
    for (let z = z0; z < z1; z++) {
      const wz = peak * Math.exp(-((z - cz) ** 2) / (2 * sz * sz));
      for (let y = y0; y < y1; y++) {
        const wzy = wz * Math.exp(-((y - cy) ** 2) / (2 * s * s));
        if (wzy < 1) continue;
        const row = (z * ny + y) * nx;
        for (let x = x0; x < x1; x++) signal[row + x] += wzy * wx[x - x0];
      }
    }
  }
  const noise = gaussianTable(random);
  const out = new Uint16Array(signal.length);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const mean = style.background + signal[i];
    const v = mean + Math.sqrt(mean) * noise[(state >>> 0) & (NOISE_TABLE_SIZE - 1)];
    out[i] = v < 0 ? 0 : v > 65535 ? 65535 : v;
  }
  return out;
}
