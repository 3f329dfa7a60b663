/** Keys that several holders may hold at once: a key is held until the last of its holders lets go. */
export class Holds<K> {
  #holders = new Map<K, number>();

  /** Holds `keys` until the returned function is called (once). */
  hold(keys: Iterable<K>): () => void {
    const held = [...keys];
    for (const key of held) this.#holders.set(key, (this.#holders.get(key) ?? 0) + 1);
    return () => {
      for (const key of held) {
        const left = this.#holders.get(key)! - 1;
        if (left === 0) this.#holders.delete(key);
        else this.#holders.set(key, left);
      }
    };
  }

  has(key: K): boolean {
    return this.#holders.has(key);
  }

  /** The keys held now. */
  held(): K[] {
    return [...this.#holders.keys()];
  }
}
