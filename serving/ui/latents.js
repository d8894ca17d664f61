// keras_dcgan/latents.py, keras_dcgan/digits.py and keras_dcgan/latent_walk.py's interpolate in
// JavaScript, so that the page makes the same latents as every other back end: seed N (and
// digit D) draws the same image here as from `keras-dcgan generate`. The 32-bit hash is exact
// integer arithmetic (Math.imul keeps the low 32 bits of a product, as `& MASK_32` does);
// Box-Muller runs in float64 and rounds to float32, as numpy does.

export const MAX_SEED = 2 ** 31 - 1;
const MIX_1 = 0x7feb352d;
const MIX_2 = 0x2c1b3c6d;
const SEED_OFFSET = 0x5bd1e995;
const TWO_TO_32 = 2 ** 32;

function hash32(value) {
  let x = value >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, MIX_1) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, MIX_2) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

export function checkSeed(seed) {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new RangeError(`seeds must be integers in [0, ${MAX_SEED}], got ${seed}`);
  }
  return seed;
}

/** Float32Array [seeds.length * latentDim] of standard normal values, a pure function of each seed. */
export function latentsFromSeeds(seeds, latentDim) {
  const counters = [];
  for (let j = 0; j < latentDim; j++) counters.push([hash32(2 * j + 1), hash32(2 * j + 2)]);
  const latents = new Float32Array(seeds.length * latentDim);
  seeds.forEach((seed, row) => {
    const key = hash32(checkSeed(seed) + SEED_OFFSET);
    counters.forEach(([firstCounter, secondCounter], j) => {
      // (k + 0.5) / 2**32 lies strictly inside (0, 1): the logarithm is always finite.
      const uniform1 = (hash32(key ^ firstCounter) + 0.5) / TWO_TO_32;
      const uniform2 = (hash32(key ^ secondCounter) + 0.5) / TWO_TO_32;
      latents[row * latentDim + j] = Math.sqrt(-2.0 * Math.log(uniform1)) * Math.cos(2.0 * Math.PI * uniform2);
    });
  });
  return latents;
}

/** A copy of `latents` (rows of latentDim) whose category, argmax of the first `categories` values, is each asked digit. */
export function latentsForDigits(latents, digits, latentDim, categories) {
  const moved = Float32Array.from(latents);
  digits.forEach((digit, row) => {
    if (!Number.isInteger(digit) || digit < 0 || digit >= categories) {
      throw new RangeError(`digits must be integers from 0 to ${categories - 1}, got ${digit}`);
    }
    const start = row * latentDim;
    let current = 0;
    for (let k = 1; k < categories; k++) if (moved[start + k] > moved[start + current]) current = k;
    const value = moved[start + current];
    moved[start + current] = moved[start + digit];
    moved[start + digit] = value;
  });
  return moved;
}

/** The latent at `fraction` of the great circle from `start` to `end` (straight line when they are parallel). */
export function interpolate(start, end, fraction) {
  let dot = 0, startSquared = 0, endSquared = 0;
  for (let j = 0; j < start.length; j++) {
    dot += start[j] * end[j];
    startSquared += start[j] * start[j];
    endSquared += end[j] * end[j];
  }
  const cosine = dot / (Math.sqrt(startSquared) * Math.sqrt(endSquared));
  const angle = Math.acos(Math.min(1, Math.max(-1, cosine)));
  const latent = new Float32Array(start.length);
  for (let j = 0; j < start.length; j++) {
    latent[j] = angle < 1e-6
      ? (1 - fraction) * start[j] + fraction * end[j]
      : (Math.sin((1 - fraction) * angle) * start[j] + Math.sin(fraction * angle) * end[j]) / Math.sin(angle);
  }
  return latent;
}
