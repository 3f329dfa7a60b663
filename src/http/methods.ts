/** HTTP methods as the routes read them. */

/** A GET, or a HEAD: asked of a route that only looks, a HEAD is answered as its GET, without the body. */
export function isLook(method: string): boolean {
  return method === "GET" || method === "HEAD";
}
