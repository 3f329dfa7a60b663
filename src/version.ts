/** interop's version; a test checks it against package.json so the two cannot drift. */
export const VERSION = "1.0.0";

/** Set by build.ts (esbuild's `define`) in the bundle and the executable; absent when run from src/. */
declare const INTEROP_BUILD: string | undefined;

/**
 * Which build this is: the commit and its date a binary was built from (`2ee9509 2026-12-07`, `+changes` when the
 * tree had uncommitted ones), or `source` when run from src/. The version alone named every build alike.
 */
export const BUILD: string = typeof INTEROP_BUILD === "string" ? INTEROP_BUILD : "source";
