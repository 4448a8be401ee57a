// What the checks share: exact comparisons that fail with a readable message, the shape of a
// task as the API documents it, and the HS256 tokens a server run with AUTH_MODE=jwt accepts.

import { createHmac } from "node:crypto";
import { inspect, isDeepStrictEqual } from "node:util";

import type { components } from "./schema.js";

type Task = components["schemas"]["TaskPublic"];

const TASK_FIELDS = [
  "completed",
  "completed_at",
  "created_at",
  "description",
  "due_at",
  "due_date",
  "etag",
  "id",
  "next_occurrence_id",
  "priority",
  "recurrence",
  "reminder",
  "series_id",
  "tags",
  "title",
  "updated_at",
  "user_id",
];
// 2026-11-24T15:27:06.908932Z: UTC, ISO 8601, `Z` suffix.
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

export class CheckFailure extends Error {
  override name = "CheckFailure";
}

export function fail(message: string): never {
  throw new CheckFailure(message);
}

export function show(value: unknown): string {
  return inspect(value, { depth: 6, breakLength: 120 });
}

export function expectEqual<T>(actual: T, expected: T, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function expectTrue(condition: boolean, what: string): void {
  if (!condition) {
    fail(what);
  }
}

// A task exactly as the API documents it; `expected` pins the client-visible fields.
export function expectTask(task: Task, expected: Partial<Task>, what: string): Task {
  expectEqual(Object.keys(task).sort(), TASK_FIELDS, `${what}: task fields`);
  expectTrue(Number.isSafeInteger(task.id) && task.id >= 1, `${what}: id ${show(task.id)}`);
  for (const stamp of [task.created_at, task.updated_at]) {
    expectTrue(TIMESTAMP.test(stamp), `${what}: timestamp ${show(stamp)} is not UTC ISO 8601`);
  }
  expectTrue(task.updated_at >= task.created_at, `${what}: updated_at before created_at`);
  if (task.completed) {
    expectTrue(
      task.completed_at !== null && TIMESTAMP.test(task.completed_at),
      `${what}: a completed task needs completed_at, got ${show(task.completed_at)}`,
    );
  } else {
    expectEqual(task.completed_at, null, `${what}: completed_at of a pending task`);
  }
  for (const [key, value] of Object.entries(expected)) {
    expectEqual(task[key as keyof Task], value, `${what}: ${key}`);
  }
  return task;
}

// An HS256 token for `user`, as a frontend sharing AUTH_JWT_SECRET would make one.
export function hs256Token(user: string, secret: string): string {
  const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + 600;
  const unsigned = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: user, exp })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}
