/** Keys that several holders may hold at once: a key is held until the last of its holders lets go. */
export class Holds<K> {
  #holders = new Map<K, number>();

  /** Holds `keys` (`weight` times each: what the holder counts there) until the returned function is called (once). */
  hold(keys: Iterable<K>, weight = 1): () => void {
    const held = [...keys];
    for (const key of held) this.#holders.set(key, this.count(key) + weight);
    return () => {
      for (const key of held) {
        const left = this.#holders.get(key)! - weight;
        if (left === 0) this.#holders.delete(key);
        else this.#holders.set(key, left);
      }
    };
  }

  /** How much `key` is held: the weights of its holders, 0 when it is not held. */
  count(key: K): number {
    return this.#holders.get(key) ?? 0;
  }

  /** The keys held now. */
  held(): K[] {
    return [...this.#holders.keys()];
  }
}
