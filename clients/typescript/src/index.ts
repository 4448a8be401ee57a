// The package's public entry: `import { createTodoClient } from "todo-api-client"`.

export {
  createTodoClient,
  newIdempotencyKey,
  type CallOptions,
  type Created,
  type CreateOptions,
  type HealthStatus,
  type ListQuery,
  type NewTask,
  type NotModified,
  type PageModified,
  type Recurrence,
  type Reminder,
  type RemindersQuery,
  type StatsQuery,
  type TagCount,
  type Task,
  type TaskChanges,
  type TaskModified,
  type TaskPage,
  type TaskPriority,
  type TaskReplacement,
  type TaskSort,
  type TaskStats,
  type TaskStatus,
  type TodoClient,
  type TodoClientOptions,
  type WriteOptions,
} from "./client.js";
export {
  PreconditionFailedError,
  ProblemType,
  TodoApiError,
  type FieldError,
  type Problem,
  type ValidationProblem,
} from "./errors.js";
export { bearerToken, type TokenSource } from "./auth.js";
export type { components, operations, paths } from "./schema.js";
