// Type-level check of the package's entry point, imported by name as a user would. Compiled here
// and again in the scratch project of run-check.sh that installs the packed tarball. There, with
// skipLibCheck, a declaration file missing from the tarball is no error: the types it held just
// accept anything. Each assignment below must therefore fail to compile, and
// `@ts-expect-error` turns "it compiled" into the error.

import {
  createTodoClient,
  type Created,
  type ListQuery,
  type NotModified,
  type PreconditionFailedError,
  type TaskModified,
  type TaskPage,
  type TaskStats,
  type TodoApiError,
} from "todo-api-client";

export async function exportsAreTyped(
  created: Created,
  page: TaskPage,
  polled: TaskModified | NotModified,
  stale: PreconditionFailedError,
  problem: TodoApiError,
): Promise<unknown[]> {
  const todos = createTodoClient({ baseUrl: "http://127.0.0.1:8000", userId: "alice" });
  // @ts-expect-error a task's etag is a string
  const etag: number = created.task.etag;
  // @ts-expect-error `sort` takes only the listed keys
  const sort: ListQuery["sort"] = "urgency";
  // @ts-expect-error a page holds tasks
  const tasks: string[] = page.tasks;
  // @ts-expect-error stats are counts
  const stats: TaskStats = { total: "3" };
  // @ts-expect-error only a changed result carries the task
  const task = polled.task;
  // @ts-expect-error a 412 always carries the current ETag
  const current: undefined = stale.etag;
  // @ts-expect-error field errors are objects
  const errors: string[] = problem.errors;
  // @ts-expect-error a title is required
  await todos.create({ description: "no title" });
  // @ts-expect-error tags are strings
  await todos.create({ title: "Buy milk", tags: [1] });
  // @ts-expect-error a priority is low, medium or high
  await todos.list({ priority: ["urgent"] });
  // @ts-expect-error a tag's count is a number
  const count: string | undefined = (await todos.tags())[0]?.count;
  // @ts-expect-error tz names a zone
  await todos.stats({ tz: 2 });
  return [etag, sort, tasks, stats, task, current, errors, count];
}
