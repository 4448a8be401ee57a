// A small client of one user's todo list, on top of openapi-fetch and the types generated from
// the app's own OpenAPI document (schema.d.ts): when the API changes shape, this file stops
// compiling instead of a caller failing at run time.
//
// What openapi-fetch leaves to every caller, this does once: the HTTP conventions the API relies
// on (ETag / If-Match / If-None-Match, Idempotency-Key, Link pages, problem documents) become
// options, result fields and exceptions, so a caller never reads a header by name.

import createClient, { type Client } from "openapi-fetch";

import { bearerToken, type TokenSource } from "./auth.js";
import { errorFromResponse, ProblemType, TodoApiError } from "./errors.js";
import type { components, operations, paths } from "./schema.js";

export type Task = components["schemas"]["TaskPublic"];
export type NewTask = components["schemas"]["TaskCreate"];
export type TaskReplacement = components["schemas"]["TaskReplace"];
export type TaskChanges = components["schemas"]["TaskUpdate"];
export type TaskStats = components["schemas"]["TaskStats"];
export type TaskStatus = components["schemas"]["TaskStatus"];
export type TaskSort = components["schemas"]["TaskSort"];
export type TaskPriority = Task["priority"];
export type TagCount = components["schemas"]["TagCount"];
export type Recurrence = components["schemas"]["RecurrenceRule"];
export type Reminder = components["schemas"]["ReminderRule"];
export type RemindersQuery = NonNullable<
  operations["list_due_reminders"]["parameters"]["query"]
>;
export type HealthStatus = components["schemas"]["HealthStatus"];
type ListParameters = NonNullable<operations["list_tasks"]["parameters"]["query"]>;
/**
 * The list operation's query: `status`, `sort`, `limit` (1–200), `offset`, `q` (search),
 * `priority`, `tags`, `has_due`, `due_from`, `due_to`, `overdue` and `tz`. `priority` (any of)
 * and `tags` (all of, ignoring case) also take an array, sent comma-separated; an empty array
 * is the same as leaving the filter out.
 */
export type ListQuery = Omit<ListParameters, "priority" | "tags"> & {
  priority?: ListParameters["priority"] | readonly TaskPriority[];
  tags?: ListParameters["tags"] | readonly string[];
};
/** `tz`: the IANA time zone whose day `overdue` and `due_today` count in (default UTC). */
export type StatsQuery = NonNullable<operations["get_task_stats"]["parameters"]["query"]>;

export interface TodoClientOptions {
  /** Where the API is served, e.g. "https://todo.example.com" (without /api). */
  baseUrl: string;
  /** Whose tasks: the `{user_id}` of every path. With AUTH_MODE=jwt, the token's `sub`. */
  userId: string;
  /**
   * Sent as `Authorization: Bearer <token>`. A function is called before every request, so it
   * can hand out a fresh short-lived token, e.g. `async () => (await authClient.token()).data?.token`
   * with Better Auth's JWT plugin. Returning undefined sends no token.
   */
  token?: string | TokenSource | undefined;
  /** A fetch to send requests with (tests, instrumentation); defaults to the global one. */
  fetch?: ((request: Request) => Promise<Response>) | undefined;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

export interface WriteOptions extends CallOptions {
  /**
   * The ETag the change is based on (a task's `etag`). If the task has changed since, nothing
   * is changed and the call throws `PreconditionFailedError` carrying the current ETag.
   */
  ifMatch?: string | undefined;
}

export interface CreateOptions extends CallOptions {
  /**
   * Sent as `Idempotency-Key`: for 24 hours a repeat with the same key and body gets the first
   * answer back (`replayed: true`) and creates nothing. See `newIdempotencyKey()`.
   */
  idempotencyKey?: string | undefined;
  /**
   * How many times to retry after a network error, a 409 (the same key still in flight), or a
   * 502/503/504, waiting `Retry-After` when the server gives one (up to 30 s; a longer wait
   * throws instead). Every attempt carries the same `Idempotency-Key`, made up here when none is
   * given, so a retry cannot create a second task. Default 0.
   */
  retries?: number | undefined;
}

export interface Created {
  task: Task;
  /** True when this is the stored answer to an earlier request with the same key. */
  replayed: boolean;
  /** The task's absolute URL (`Location`). */
  location: string;
}

export interface TaskPage {
  tasks: Task[];
  /** How many tasks match the query's filters over all pages (`X-Total-Count`). */
  total: number;
  /** This page's ETag, for `listIfChanged`. */
  etag: string;
  /** The `rel="next"` URL, or null on the last page. Follow it with `nextPage`. */
  next: string | null;
  /** The `rel="prev"` URL, or null on the first page. Follow it with `prevPage`. */
  prev: string | null;
}

/** The copy the caller holds is current (`304 Not Modified`). */
export interface NotModified {
  readonly notModified: true;
  readonly etag: string;
}

export interface TaskModified {
  readonly notModified: false;
  readonly etag: string;
  readonly task: Task;
}

export interface PageModified {
  readonly notModified: false;
  readonly etag: string;
  readonly page: TaskPage;
}

/**
 * The operations of one user's todo list. Every method throws `TodoApiError` (or its subclass
 * `PreconditionFailedError` for a 412) when the API answers with an error.
 */
export interface TodoClient {
  readonly userId: string;
  /** The underlying openapi-fetch client, with the token middleware, for anything not covered. */
  readonly raw: Client<paths>;

  /** One page of tasks; newest first unless `sort` says otherwise. */
  list(query?: ListQuery, options?: CallOptions): Promise<TaskPage>;
  /** The page after `page`, or null if it was the last. */
  nextPage(page: TaskPage, options?: CallOptions): Promise<TaskPage | null>;
  /** The page before `page`, or null if it was the first. */
  prevPage(page: TaskPage, options?: CallOptions): Promise<TaskPage | null>;
  /**
   * Every task matching `query`, page after page (`limit` sets the page size). Pages are by
   * offset: a task created or deleted meanwhile can shift one to the next page or skip it.
   */
  all(query?: ListQuery, options?: CallOptions): AsyncIterableIterator<Task>;
  /** The page for `query`, unless its ETag is still `etag`. For cheap polling. */
  listIfChanged(
    query: ListQuery,
    etag: string,
    options?: CallOptions,
  ): Promise<PageModified | NotModified>;
  /** Counts of all, pending, completed, overdue and due-today tasks; "today" is in `query.tz`. */
  stats(query?: StatsQuery, options?: CallOptions): Promise<TaskStats>;
  /** Every tag on the user's tasks with how many carry it, by name ignoring case. */
  tags(options?: CallOptions): Promise<TagCount[]>;
  /**
   * The tasks whose reminder has come by `query.until` (default now) and is not acknowledged,
   * the oldest first: what to show the user now.
   */
  dueReminders(query?: RemindersQuery, options?: CallOptions): Promise<Task[]>;
  /** Marks the task's reminder as shown: it is not listed again until set again. */
  acknowledgeReminder(taskId: number, options?: CallOptions): Promise<Task>;

  /** One task; its `etag` is the value to send back in `ifMatch`. */
  get(taskId: number, options?: CallOptions): Promise<Task>;
  /** The task, unless its ETag is still `etag`. For cheap polling. */
  getIfChanged(
    taskId: number,
    etag: string,
    options?: CallOptions,
  ): Promise<TaskModified | NotModified>;

  /** A new task; the title is trimmed, `completed` defaults to false. */
  create(task: NewTask, options?: CreateOptions): Promise<Created>;
  /** Replaces the task: an absent description becomes null, an absent `completed` is kept. */
  replace(taskId: number, task: TaskReplacement, options?: WriteOptions): Promise<Task>;
  /** Changes only the fields given; `description: null` clears it. */
  update(taskId: number, changes: TaskChanges, options?: WriteOptions): Promise<Task>;
  /** Flips completion in one atomic statement: two concurrent toggles cancel out. */
  toggle(taskId: number, options?: WriteOptions): Promise<Task>;
  /** Sets completion; setting the current state changes nothing. */
  setCompleted(taskId: number, completed: boolean, options?: WriteOptions): Promise<Task>;
  /** Deletes the task; a missing one is a 404 `TodoApiError`. */
  delete(taskId: number, options?: WriteOptions): Promise<void>;

  /** Sets every task to `completed`; answers how many changed. */
  completeAll(completed: boolean, options?: CallOptions): Promise<{ updated: number }>;
  /** Deletes the completed tasks; answers how many. */
  deleteCompleted(options?: CallOptions): Promise<{ deleted: number }>;

  /** Liveness: the process answers (never touches the database). */
  health(options?: CallOptions): Promise<HealthStatus>;
  /** Readiness: the database answers; a 503 `TodoApiError` otherwise. */
  ready(options?: CallOptions): Promise<HealthStatus>;
}

const TASKS = "/api/{user_id}/tasks";
const TASK = "/api/{user_id}/tasks/{task_id}";
const COMPLETE = "/api/{user_id}/tasks/{task_id}/complete";

// A Retry-After beyond this is not waited out: it says "later", not "in a moment".
const MAX_RETRY_WAIT_SECONDS = 30;

/** A fresh key for `create(task, { idempotencyKey })`: keep it with the task until it is created. */
export function newIdempotencyKey(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  // Browsers offer randomUUID only in secure contexts; a page served over plain http from a LAN
  // address during development still has getRandomValues, so build the same version-4 UUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  const groups = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...groups, hex.slice(20)].join("-");
}

export function createTodoClient(options: TodoClientOptions): TodoClient {
  const { baseUrl, userId, token, fetch } = options;
  const api = createClient<paths>({ baseUrl, ...(fetch === undefined ? {} : { fetch }) });
  if (token !== undefined) {
    api.use(bearerToken(typeof token === "string" ? () => token : token));
  }
  const owner = { user_id: userId };
  const one = (taskId: number) => ({ user_id: userId, task_id: taskId });

  async function page(
    request: { query?: ListQuery; link?: string; ifNoneMatch?: string },
    options: CallOptions,
  ): Promise<TaskPage | NotModified> {
    // A Link URL is absolute under the server's PUBLIC_BASE_URL, which need not be the origin
    // this client was given (a dev proxy, say), and following another origin would hand it the
    // bearer token. Only its query string is taken, sent to our own baseUrl verbatim.
    const search =
      request.link === undefined ? undefined : new URL(request.link, baseUrl).search.slice(1);
    const ifNoneMatch = request.ifNoneMatch;
    const outcome = await api.GET(TASKS, {
      params: {
        path: owner,
        ...(request.query === undefined ? {} : { query: listParameters(request.query) }),
        ...(ifNoneMatch === undefined ? {} : { header: { "If-None-Match": ifNoneMatch } }),
      },
      ...(search === undefined ? {} : { querySerializer: () => search }),
      ...signalOf(options),
    });
    if (outcome.response.status === 304) {
      return notModified(outcome.response, ifNoneMatch ?? "");
    }
    const tasks = unwrap(outcome);
    const links = parseLinks(outcome.response.headers.get("link"));
    return {
      tasks,
      total: Number(requiredHeader(outcome.response, "X-Total-Count")),
      etag: requiredHeader(outcome.response, "ETag"),
      next: links["next"] ?? null,
      prev: links["prev"] ?? null,
    };
  }

  // Only listIfChanged sends If-None-Match, so the other callers can never get a 304: this
  // narrows the result's type for them.
  async function fullPage(request: { query?: ListQuery; link?: string }, options: CallOptions) {
    const result = await page(request, options);
    if ("notModified" in result) {
      throw new Error("304 Not Modified to a request without If-None-Match");
    }
    return result;
  }

  async function create(task: NewTask, options: CreateOptions = {}): Promise<Created> {
    const retries = options.retries ?? 0;
    const key = options.idempotencyKey ?? (retries > 0 ? newIdempotencyKey() : undefined);
    for (let attempt = 0; ; attempt += 1) {
      let outcome;
      try {
        outcome = await api.POST(TASKS, {
          params: {
            path: owner,
            ...(key === undefined ? {} : { header: { "Idempotency-Key": key } }),
          },
          body: task,
          ...signalOf(options),
        });
      } catch (error) {
        // A lost response looks like this too: the task may exist, which is what the key is for.
        if (attempt >= retries || options.signal?.aborted) {
          throw error;
        }
        await sleep(backoffMs(attempt), options.signal);
        continue;
      }
      const { response } = outcome;
      if (response.ok) {
        return {
          task: unwrap(outcome),
          replayed: response.headers.get("idempotent-replayed") === "true",
          location: requiredHeader(response, "Location"),
        };
      }
      const error = errorFromResponse(response, outcome.error);
      if (attempt >= retries || !isTransient(error)) {
        throw error;
      }
      const waitSeconds = error.retryAfter;
      if (waitSeconds !== undefined && waitSeconds > MAX_RETRY_WAIT_SECONDS) {
        throw error;
      }
      const waitMs = waitSeconds === undefined ? backoffMs(attempt) : waitSeconds * 1000;
      await sleep(waitMs, options.signal);
    }
  }

  async function setCompletion(
    taskId: number,
    body: { completed: boolean } | undefined,
    options: WriteOptions,
  ): Promise<Task> {
    return unwrap(
      await api.PATCH(COMPLETE, {
        params: { path: one(taskId), ...ifMatchOf(options) },
        ...(body === undefined ? {} : { body }),
        ...signalOf(options),
      }),
    );
  }

  return {
    userId,
    raw: api,

    async list(query = {}, options = {}) {
      return await fullPage({ query }, options);
    },

    async nextPage(current, options = {}) {
      return current.next === null ? null : await fullPage({ link: current.next }, options);
    },

    async prevPage(current, options = {}) {
      return current.prev === null ? null : await fullPage({ link: current.prev }, options);
    },

    async *all(query = {}, options = {}) {
      let current: TaskPage | null = await fullPage({ query }, options);
      while (current !== null) {
        yield* current.tasks;
        current = current.next === null ? null : await fullPage({ link: current.next }, options);
      }
    },

    async listIfChanged(query, etag, options = {}) {
      const result = await page({ query, ifNoneMatch: etag }, options);
      if ("notModified" in result) {
        return result;
      }
      return { notModified: false, etag: result.etag, page: result };
    },

    async stats(query = {}, options = {}) {
      return unwrap(
        await api.GET("/api/{user_id}/tasks/stats", {
          params: { path: owner, query },
          ...signalOf(options),
        }),
      );
    },

    async tags(options = {}) {
      return unwrap(
        await api.GET("/api/{user_id}/tags", { params: { path: owner }, ...signalOf(options) }),
      );
    },

    async dueReminders(query = {}, options = {}) {
      return unwrap(
        await api.GET("/api/{user_id}/reminders", {
          params: { path: owner, query },
          ...signalOf(options),
        }),
      );
    },

    async acknowledgeReminder(taskId, options = {}) {
      return unwrap(
        await api.POST("/api/{user_id}/tasks/{task_id}/reminder/ack", {
          params: { path: one(taskId) },
          ...signalOf(options),
        }),
      );
    },

    async get(taskId, options = {}) {
      return unwrap(await api.GET(TASK, { params: { path: one(taskId) }, ...signalOf(options) }));
    },

    async getIfChanged(taskId, etag, options = {}) {
      const outcome = await api.GET(TASK, {
        params: { path: one(taskId), header: { "If-None-Match": etag } },
        ...signalOf(options),
      });
      if (outcome.response.status === 304) {
        return notModified(outcome.response, etag);
      }
      const task = unwrap(outcome);
      return { notModified: false, etag: task.etag, task };
    },

    create,

    async replace(taskId, task, options = {}) {
      return unwrap(
        await api.PUT(TASK, {
          params: { path: one(taskId), ...ifMatchOf(options) },
          body: task,
          ...signalOf(options),
        }),
      );
    },

    async update(taskId, changes, options = {}) {
      return unwrap(
        await api.PATCH(TASK, {
          params: { path: one(taskId), ...ifMatchOf(options) },
          body: changes,
          ...signalOf(options),
        }),
      );
    },

    async toggle(taskId, options = {}) {
      return await setCompletion(taskId, undefined, options);
    },

    async setCompleted(taskId, completed, options = {}) {
      return await setCompletion(taskId, { completed }, options);
    },

    async delete(taskId, options = {}) {
      const outcome = await api.DELETE(TASK, {
        params: { path: one(taskId), ...ifMatchOf(options) },
        ...signalOf(options),
      });
      if (!outcome.response.ok) {
        throw errorFromResponse(outcome.response, outcome.error);
      }
    },

    async completeAll(completed, options = {}) {
      return unwrap(
        await api.POST("/api/{user_id}/tasks/complete-all", {
          params: { path: owner },
          body: { completed },
          ...signalOf(options),
        }),
      );
    },

    async deleteCompleted(options = {}) {
      return unwrap(
        await api.DELETE("/api/{user_id}/tasks/completed", {
          params: { path: owner },
          ...signalOf(options),
        }),
      );
    },

    async health(options = {}) {
      return unwrap(await api.GET("/health", { ...signalOf(options) }));
    },

    async ready(options = {}) {
      return unwrap(await api.GET("/health/ready", { ...signalOf(options) }));
    },
  };
}

// exactOptionalPropertyTypes: openapi-fetch's options may be absent but not undefined.
function signalOf(options: CallOptions): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

// The API takes several priorities or tags as one comma-separated value (a tag has no commas),
// where openapi-fetch would repeat the parameter. An empty array leaves the filter out.
function listParameters(query: ListQuery): ListParameters {
  const { priority, tags, ...wire } = query;
  const priorities = commaSeparated(priority);
  const tagNames = commaSeparated(tags);
  return {
    ...wire,
    ...(priorities === undefined ? {} : { priority: priorities }),
    ...(tagNames === undefined ? {} : { tags: tagNames }),
  };
}

function commaSeparated(
  values: string | null | readonly string[] | undefined,
): string | null | undefined {
  if (typeof values === "string" || values === null || values === undefined) {
    return values;
  }
  return values.length === 0 ? undefined : values.join(",");
}

function ifMatchOf(options: WriteOptions): { header?: { "If-Match": string } } {
  return options.ifMatch === undefined ? {} : { header: { "If-Match": options.ifMatch } };
}

function unwrap<D>(outcome: { data?: D; error?: unknown; response: Response }): D {
  const { data, error, response } = outcome;
  if (!response.ok) {
    throw errorFromResponse(response, error);
  }
  if (data === undefined) {
    throw new TodoApiError(response, `${response.status} without the body the API documents`);
  }
  return data;
}

function notModified(response: Response, sent: string): NotModified {
  // If-None-Match may list several tags; the header says which one is current.
  return { notModified: true, etag: response.headers.get("etag") ?? sent };
}

// The API always sends these; in a browser they are readable only because the server lists
// them in Access-Control-Expose-Headers, so their absence means a proxy or CORS set-up hid them.
function requiredHeader(response: Response, name: string): string {
  const value = response.headers.get(name);
  if (value === null) {
    throw new TodoApiError(response, `The response has no ${name} header (hidden by CORS?).`);
  }
  return value;
}

// RFC 8288: `<url>; rel="next", <url>; rel="prev"`. A rel may name several relations.
export function parseLinks(header: string | null): Record<string, string> {
  const links: Record<string, string> = {};
  for (const match of (header ?? "").matchAll(/<([^>]*)>([^<]*)/g)) {
    const [, url, params] = match;
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params ?? "");
    for (const name of (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/)) {
      if (name !== "" && url !== undefined && !(name in links)) {
        links[name] = url;
      }
    }
  }
  return links;
}

function isTransient(error: TodoApiError): boolean {
  if (error.status === 409) {
    return error.type === ProblemType.IdempotencyKeyInFlight;
  }
  return error.status === 502 || error.status === 503 || error.status === 504;
}

function backoffMs(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 4000);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
