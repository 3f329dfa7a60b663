/** Reading the core's responses in tests that call the router directly. */
import type { BodyResponse } from "../../src/runtime/types.ts";

/** The body as text, whether the route answered text or bytes (a cached document). */
export function bodyText(response: BodyResponse): string {
  return typeof response.body === "string" ? response.body : new TextDecoder().decode(response.body);
}
