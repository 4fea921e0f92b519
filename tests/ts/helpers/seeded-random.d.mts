/** mulberry32: numbers in [0, 1) replayable from `seed`. */
export function seededRandom(seed: number): () => number;
