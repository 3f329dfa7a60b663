/**
 * A task followed by its stream (`SubscribeToTask`, v0.3 `tasks/resubscribe`): the events, in either version's
 * form, folded into the task as it stands, read as `parseSendResult` reads a polled one.
 */
import { isObject } from "./protocol.ts";
import { parseSendResult, type TaskView } from "./task_view.ts";

/** v1.0 wraps an update (`{statusUpdate}`), v0.3 tags it (`{kind: "status-update", …}`). */
function update(event: Record<string, unknown>, wrapper: string, kind: string): Record<string, unknown> | undefined {
  if (isObject(event[wrapper])) return event[wrapper];
  return event.kind === kind ? event : undefined;
}

export class StreamedTask {
  readonly #id: string;
  #task: Record<string, unknown> | undefined;

  /** `id`: the task subscribed to. */
  constructor(id: string) {
    this.#id = id;
  }

  /**
   * Folds in one event's `result`; returns the task as it now stands (a message event: the answer itself). An
   * event of another task is ignored: its answer is another asker's, which must not settle this one.
   */
  apply(event: unknown): TaskView | undefined {
    if (!isObject(event)) return this.view;
    const status = update(event, "statusUpdate", "status-update");
    const artifact = update(event, "artifactUpdate", "artifact-update");
    if (status !== undefined || artifact !== undefined) {
      if ((status ?? artifact)!.taskId !== this.#id) return this.view;
      // An update before the task itself (a server may skip it): the task is what the updates say.
      const task = this.#task ?? { id: this.#id, status: { state: "TASK_STATE_WORKING" }, artifacts: [] };
      if (status !== undefined && isObject(status.status)) this.#task = { ...task, status: status.status };
      if (artifact !== undefined && isObject(artifact.artifact)) {
        this.#task = { ...task, artifacts: withArtifact(task.artifacts, artifact.artifact, artifact.append === true) };
      }
      return this.view;
    }
    const message = isObject(event.message) ? event.message : event.kind === "message" ? event : undefined;
    if (message?.taskId !== undefined && message.taskId !== this.#id) return this.view;
    const view = parseSendResult(event);
    if (view?.taskId !== undefined && view.taskId !== this.#id) return this.view;
    if (view?.taskId === undefined) return view ?? this.view;
    this.#task = isObject(event.task) ? event.task : event;
    return view;
  }

  get view(): TaskView | undefined {
    return this.#task === undefined ? undefined : parseSendResult({ task: this.#task });
  }
}

/** The artifacts with one updated: appended to its earlier chunks (`append`), else in place of them. */
function withArtifact(artifacts: unknown, artifact: Record<string, unknown>, append: boolean): unknown[] {
  const list = Array.isArray(artifacts) ? [...artifacts] : [];
  const index = list.findIndex((known) => isObject(known) && known.artifactId === artifact.artifactId);
  if (index === -1) return [...list, artifact];
  const known = list[index] as Record<string, unknown>;
  const parts = append && Array.isArray(known.parts) && Array.isArray(artifact.parts)
    ? [...known.parts, ...artifact.parts]
    : artifact.parts;
  list[index] = { ...known, ...artifact, parts };
  return list;
}
