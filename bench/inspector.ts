/**
 * A CPU profile of a running process through its V8 inspector (Chrome DevTools protocol): how the benchmark
 * profiles interop on Deno, which has no `--cpu-prof`.
 */

/** A `.cpuprofile`: what Chrome DevTools and speedscope open as a flame graph. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
}

/** Starts sampling the process whose inspector listens on `port`; the returned function stops and hands the profile. */
export async function startProfiling(port: number): Promise<() => Promise<CpuProfile>> {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as Array<{ webSocketDebuggerUrl: string }>;
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("error", () => reject(new Error(`cannot reach the inspector on port ${port}`)), { once: true });
  });
  const answers = new Map<number, (result: unknown) => void>();
  socket.addEventListener("message", (event) => {
    const { id, result } = JSON.parse(String(event.data));
    answers.get(id)?.(result);
    answers.delete(id);
  });
  let nextId = 1;
  const call = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      answers.set(id, resolve as (result: unknown) => void);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  // Node's --cpu-prof samples every 1 ms by default; the same here, so the two runtimes' profiles compare.
  await call("Profiler.setSamplingInterval", { interval: 1000 });
  await call("Profiler.start");
  return async () => {
    const { profile } = await call<{ profile: CpuProfile }>("Profiler.stop");
    socket.close();
    return profile;
  };
}
