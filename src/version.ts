/** interop's version; a test checks it against package.json so the two cannot drift. */
export const VERSION = "1.0.0";
