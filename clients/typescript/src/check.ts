// End-to-end check of the Todo API through the generated, typed client.
//
// Usage: TODO_API_BASE_URL=http://127.0.0.1:8000 node build/check.js
//
// After the raw API, it checks the package's client (check-client.ts) and runs the README's
// example (build/example.js, or the file TODO_API_EXAMPLE names) against the same server.
//
// Against a server run with AUTH_MODE=jwt and AUTH_JWT_SECRET, set TODO_API_JWT_SECRET to the same
// secret: every request then carries an HS256 token for the user its path names (through the
// `bearerToken` middleware of ./auth.ts), and the check also proves that a request without a
// token is 401 and one for another user's path is 403.
//
// Every call goes through `openapi-fetch` typed by `schema.d.ts`, which is generated from the
// app's own OpenAPI document: if the API changes shape, this file stops compiling. At run time
// every status, header and body is compared exactly; the first mismatch throws and the process
// exits non-zero.

import { randomBytes } from "node:crypto";

import createClient from "openapi-fetch";

import { bearerToken } from "./auth.js";
import { checkExample, checkTodoClient } from "./check-client.js";
import {
  CheckFailure,
  expectEqual,
  expectTask,
  expectTrue,
  fail,
  hs256Token,
  show,
} from "./check-support.js";
import type { components, paths } from "./schema.js";

type Task = components["schemas"]["TaskPublic"];
type Problem = components["schemas"]["Problem"];
type ValidationProblem = components["schemas"]["ValidationProblem"];
type TaskStatus = components["schemas"]["TaskStatus"];
type TaskSort = components["schemas"]["TaskSort"];

const PROBLEM_MEDIA_TYPE = "application/problem+json";
const TASK_NOT_FOUND = "urn:todo-api:task-not-found";
const VALIDATION_ERROR = "urn:todo-api:validation-error";
const PRECONDITION_FAILED = "urn:todo-api:precondition-failed";

// The shape openapi-fetch resolves to: either `data` or `error`, always `response`.
interface Outcome<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

function expectData<D, E>(outcome: Outcome<D, E>, status: number, what: string): D {
  const { data, error, response } = outcome;
  if (response.status !== status) {
    fail(`${what}: expected HTTP ${status}, got ${response.status}: ${show(error ?? data)}`);
  }
  if (data === undefined) {
    fail(`${what}: HTTP ${status} without a body`);
  }
  expectEqual(response.headers.get("content-type"), "application/json", `${what}: content-type`);
  return data;
}

function expectNoContent<D, E>(outcome: Outcome<D, E>, what: string): void {
  const { data, error, response } = outcome;
  if (response.status !== 204) {
    fail(`${what}: expected HTTP 204, got ${response.status}: ${show(error ?? data)}`);
  }
  expectEqual(data, undefined, `${what}: body`);
}

function expectProblem<D, E extends Problem>(
  outcome: Outcome<D, E>,
  status: number,
  type: string,
  what: string,
): E {
  const { data, error, response } = outcome;
  if (response.status !== status) {
    fail(`${what}: expected HTTP ${status}, got ${response.status}: ${show(error ?? data)}`);
  }
  expectEqual(response.headers.get("content-type"), PROBLEM_MEDIA_TYPE, `${what}: content-type`);
  if (error === undefined || typeof error !== "object" || error === null) {
    fail(`${what}: the problem body is not a JSON object: ${show(error)}`);
  }
  expectEqual(error.status, status, `${what}: problem status`);
  expectEqual(error.type, type, `${what}: problem type`);
  for (const field of ["title", "detail"] as const) {
    expectTrue(
      typeof error[field] === "string" && error[field].trim() !== "",
      `${what}: problem ${field} must be a non-empty string, got ${show(error[field])}`,
    );
  }
  return error;
}

function expectValidationProblem<D>(
  outcome: Outcome<D, Problem | ValidationProblem>,
  locations: (string | number)[][],
  what: string,
): ValidationProblem {
  const problem = expectProblem(outcome, 422, VALIDATION_ERROR, what);
  if (!("errors" in problem) || !Array.isArray(problem.errors)) {
    fail(`${what}: a 422 problem must carry an \`errors\` list: ${show(problem)}`);
  }
  for (const error of problem.errors) {
    expectEqual(Object.keys(error).sort(), ["loc", "msg", "type"], `${what}: error fields`);
    expectTrue(typeof error.msg === "string" && error.msg !== "", `${what}: error msg`);
    expectTrue(typeof error.type === "string" && error.type !== "", `${what}: error type`);
  }
  expectEqual(
    problem.errors.map((error) => error.loc),
    locations,
    `${what}: error locations`,
  );
  return problem;
}

// The fields a write leaves alone unless it changes them: all but updated_at and etag.
function stableFields(task: Task): Partial<Task> {
  const fields: Partial<Task> = { ...task };
  delete fields.updated_at;
  delete fields.etag;
  return fields;
}

// RFC 8288 `Link` header → { rel: URL }.
function parseLinks(header: string | null): Record<string, URL> {
  const links: Record<string, URL> = {};
  if (header === null) {
    return links;
  }
  for (const part of header.split(",")) {
    const match = /^\s*<([^>]*)>\s*;\s*rel="([^"]+)"\s*$/.exec(part);
    if (match === null || match[1] === undefined || match[2] === undefined) {
      fail(`malformed Link header ${show(header)}`);
    }
    links[match[2]] = new URL(match[1]);
  }
  return links;
}

// The user a request acts for: the segment after /api/ in its path.
function pathUser(request: Request): string | undefined {
  const [, api, user] = new URL(request.url).pathname.split("/");
  return api === "api" && user !== undefined ? decodeURIComponent(user) : undefined;
}

function uniqueSuffix(): string {
  return randomBytes(4).toString("hex");
}

async function main(): Promise<void> {
  const baseUrl = process.env["TODO_API_BASE_URL"];
  if (baseUrl === undefined || baseUrl === "") {
    fail("set TODO_API_BASE_URL to the server's base URL, e.g. http://127.0.0.1:8000");
  }
  const base = new URL(baseUrl);
  const api = createClient<paths>({ baseUrl });
  const jwtSecret = process.env["TODO_API_JWT_SECRET"];
  if (jwtSecret !== undefined && jwtSecret !== "") {
    api.use(bearerToken((request) => {
      const user = pathUser(request);
      return user === undefined ? undefined : hs256Token(user, jwtSecret);
    }));
  }

  // Fresh owners each run, using the characters the API allows beyond letters and digits.
  const run = uniqueSuffix();
  const alice = `ts.alice_${run}`;
  const bob = `ts:bob@${run}|example`;
  const own = (user: string) => ({ params: { path: { user_id: user } } });
  const item = (user: string, taskId: number) => ({
    params: { path: { user_id: user, task_id: taskId } },
  });

  // Liveness, and the request id: a well-formed incoming one is echoed back.
  const requestId = `ts-check.${run}`;
  const health = await api.GET("/health", { headers: { "X-Request-ID": requestId } });
  expectEqual(expectData(health, 200, "GET /health"), { status: "ok" }, "GET /health body");
  expectEqual(health.response.headers.get("x-request-id"), requestId, "echoed X-Request-ID");

  // Create: the title is trimmed, `completed` defaults to false, Location names the task.
  async function create(user: string, body: components["schemas"]["TaskCreate"]): Promise<Task> {
    const what = `POST tasks of ${user} ${show(body)}`;
    const outcome = await api.POST("/api/{user_id}/tasks", { ...own(user), body });
    const task = expectTask(
      expectData(outcome, 201, what),
      {
        user_id: user,
        title: body.title.trim(),
        description: body.description ?? null,
        completed: body.completed ?? false,
        tags: (body.tags ?? []).map((tag) => tag.trim()),
      },
      what,
    );
    expectEqual(task.updated_at, task.created_at, `${what}: updated_at of a new task`);
    const location = outcome.response.headers.get("location");
    if (location === null) {
      fail(`${what}: no Location header`);
    }
    const url = new URL(location);
    expectEqual(url.origin, base.origin, `${what}: Location origin`);
    expectEqual(
      decodeURIComponent(url.pathname),
      `/api/${user}/tasks/${task.id}`,
      `${what}: Location path`,
    );
    return task;
  }

  const milk = await create(alice, {
    title: "  Buy milk ",
    description: "2 litres",
    tags: [" errands ", "Dairy"],
  });
  const report = await create(alice, { title: "write report", completed: true });
  const plants = await create(alice, {
    title: "Water Zoë's plants ☕",
    description: "line 1\nline 2",
    tags: ["home", "DAIRY"],
  });
  const gym = await create(bob, { title: "Gym" });

  // List with a filter, a sort and one-task pages: X-Total-Count and Link both ways.
  async function list(
    user: string,
    query: {
      status?: TaskStatus;
      sort?: TaskSort;
      limit?: number;
      offset?: number;
      tags?: string;
    },
  ): Promise<{ tasks: Task[]; total: number; links: Record<string, URL> }> {
    const what = `GET tasks of ${user} ${show(query)}`;
    const outcome = await api.GET("/api/{user_id}/tasks", {
      params: { path: { user_id: user }, query },
    });
    const tasks = expectData(outcome, 200, what);
    const total = outcome.response.headers.get("x-total-count");
    if (total === null || !/^\d+$/.test(total)) {
      fail(`${what}: X-Total-Count ${show(total)}`);
    }
    return { tasks, total: Number(total), links: parseLinks(outcome.response.headers.get("link")) };
  }

  function expectPageLink(link: URL | undefined, offset: number, what: string): void {
    if (link === undefined) {
      fail(`${what}: missing`);
    }
    expectEqual(link.origin, base.origin, `${what}: origin`);
    expectEqual(decodeURIComponent(link.pathname), `/api/${alice}/tasks`, `${what}: path`);
    expectEqual(
      Object.fromEntries([...link.searchParams].sort()),
      { limit: "1", offset: String(offset), sort: "title", status: "pending" },
      `${what}: query`,
    );
  }

  const firstPage = await list(alice, { status: "pending", sort: "title", limit: 1 });
  expectEqual(firstPage.total, 2, "pending tasks of alice: X-Total-Count");
  expectEqual(firstPage.tasks, [milk], "pending page 1 (title order ignores case)");
  expectEqual(Object.keys(firstPage.links), ["next"], "pending page 1: Link rels");
  expectPageLink(firstPage.links["next"], 1, "pending page 1: next link");

  const nextOffset = Number(firstPage.links["next"]?.searchParams.get("offset"));
  const secondPage = await list(alice, {
    status: "pending",
    sort: "title",
    limit: 1,
    offset: nextOffset,
  });
  expectEqual(secondPage.total, 2, "pending page 2: X-Total-Count");
  expectEqual(secondPage.tasks, [plants], "pending page 2");
  expectEqual(Object.keys(secondPage.links), ["prev"], "pending page 2: Link rels");
  expectPageLink(secondPage.links["prev"], 0, "pending page 2: prev link");

  const completed = await list(alice, { status: "completed" });
  expectEqual(completed.total, 1, "completed tasks of alice: X-Total-Count");
  expectEqual(completed.tasks, [report], "completed tasks of alice");
  expectEqual(completed.links, {}, "a single page has no Link header");

  // Tags: `?tags=` keeps the tasks carrying every one of them, ignoring case; GET …/tags counts
  // them, case variants as one tag named by its first spelling in code-point order.
  const dairy = await list(alice, { tags: "dairy", sort: "title" });
  expectEqual([dairy.tasks, dairy.total], [[milk, plants], 2], "alice's tasks with ?tags=dairy");
  expectEqual((await list(alice, { tags: "DAIRY,Errands" })).tasks, [milk], "?tags=DAIRY,Errands");
  const tagsOf = async (user: string) =>
    expectData(await api.GET("/api/{user_id}/tags", own(user)), 200, `GET tags of ${user}`);
  expectEqual(
    await tagsOf(alice),
    [
      { name: "DAIRY", count: 2 },
      { name: "errands", count: 1 },
      { name: "home", count: 1 },
    ],
    "alice's tags",
  );
  expectEqual(await tagsOf(bob), [], "bob has no tags");

  const byTitleDescending = await list(alice, { sort: "-title" });
  expectEqual(byTitleDescending.tasks, [report, plants, milk], "alice's tasks by -title");
  expectEqual((await list(bob, {})).tasks, [gym], "bob sees only his own task");

  // Read.
  const read = await api.GET("/api/{user_id}/tasks/{task_id}", item(alice, milk.id));
  expectEqual(expectData(read, 200, "GET alice's milk"), milk, "GET alice's milk body");

  // Another user's task is a 404 problem, the same as a missing one, for every verb.
  const notFound = (method: string) => `${method} alice's task as bob`;
  expectProblem(
    await api.GET("/api/{user_id}/tasks/{task_id}", item(bob, milk.id)),
    404,
    TASK_NOT_FOUND,
    notFound("GET"),
  );
  expectProblem(
    await api.PUT("/api/{user_id}/tasks/{task_id}", { ...item(bob, milk.id), body: { title: "x" } }),
    404,
    TASK_NOT_FOUND,
    notFound("PUT"),
  );
  expectProblem(
    await api.PATCH("/api/{user_id}/tasks/{task_id}", {
      ...item(bob, milk.id),
      body: { completed: true },
    }),
    404,
    TASK_NOT_FOUND,
    notFound("PATCH"),
  );
  expectProblem(
    await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", item(bob, milk.id)),
    404,
    TASK_NOT_FOUND,
    notFound("toggle"),
  );
  expectProblem(
    await api.DELETE("/api/{user_id}/tasks/{task_id}", item(bob, milk.id)),
    404,
    TASK_NOT_FOUND,
    notFound("DELETE"),
  );
  const untouched = await api.GET("/api/{user_id}/tasks/{task_id}", item(alice, milk.id));
  expectEqual(expectData(untouched, 200, "milk after bob's attempts"), milk, "milk untouched");

  // Replace: an absent description becomes null, an absent `completed` or `tags` is kept.
  const replaced = expectTask(
    expectData(
      await api.PUT("/api/{user_id}/tasks/{task_id}", {
        ...item(alice, milk.id),
        body: { title: "Buy oat milk" },
      }),
      200,
      "PUT milk",
    ),
    { ...stableFields(milk), title: "Buy oat milk", description: null },
    "PUT milk",
  );
  expectTrue(replaced.updated_at > milk.updated_at, "PUT milk: updated_at must advance");
  expectTrue(replaced.etag !== milk.etag, "PUT milk: the ETag must change");

  // Update: only the fields sent change.
  const updated = expectTask(
    expectData(
      await api.PATCH("/api/{user_id}/tasks/{task_id}", {
        ...item(alice, milk.id),
        body: { description: "1 litre, unsweetened" },
      }),
      200,
      "PATCH milk",
    ),
    { ...stableFields(replaced), description: "1 litre, unsweetened" },
    "PATCH milk",
  );
  expectTrue(updated.updated_at > replaced.updated_at, "PATCH milk: updated_at must advance");

  // Toggle without a body flips; {"completed": true} sets, and repeating it changes nothing.
  const toggle = async (body: { completed: boolean } | undefined, what: string) =>
    expectData(
      await api.PATCH(
        "/api/{user_id}/tasks/{task_id}/complete",
        body === undefined ? item(alice, milk.id) : { ...item(alice, milk.id), body },
      ),
      200,
      what,
    );
  const done = expectTask(await toggle(undefined, "toggle milk"), { completed: true }, "toggle");
  expectTrue(done.updated_at > updated.updated_at, "toggle: updated_at must advance");
  expectEqual(
    { ...done, completed: false, completed_at: null, updated_at: updated.updated_at, etag: updated.etag },
    updated,
    "toggle changes only completion, updated_at and etag",
  );
  const stillDone = expectTask(
    await toggle({ completed: true }, "set milk completed"),
    done,
    "set milk completed again",
  );
  expectEqual(stillDone, done, "setting the current state is a no-op");
  const undone = expectTask(
    await toggle(undefined, "toggle milk back"),
    { completed: false, completed_at: null },
    "toggle back",
  );
  expectTrue(undone.updated_at > done.updated_at, "toggle back: updated_at must advance");

  // Conditional requests: 304 while unchanged, 412 for a stale If-Match, which changes nothing.
  const cached = await api.GET("/api/{user_id}/tasks/{task_id}", {
    ...item(alice, milk.id),
    headers: { "If-None-Match": undone.etag },
  });
  expectEqual(cached.response.status, 304, "GET milk with its current ETag");
  expectEqual(cached.response.headers.get("etag"), undone.etag, "304: ETag header");
  const stale = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
    ...item(alice, milk.id),
    headers: { "If-Match": milk.etag },
    body: { title: "lost update" },
  });
  expectProblem(stale, 412, PRECONDITION_FAILED, "PATCH milk with a stale If-Match");
  expectEqual(stale.response.headers.get("etag"), undone.etag, "412: the current ETag");
  const guarded = expectData(
    await api.PATCH("/api/{user_id}/tasks/{task_id}", {
      ...item(alice, milk.id),
      headers: { "If-Match": undone.etag },
      body: { description: null },
    }),
    200,
    "PATCH milk with the current If-Match",
  );
  expectTask(guarded, { ...stableFields(undone), description: null }, "PATCH with If-Match");
  expectEqual(guarded.title, "Buy oat milk", "the stale PATCH changed nothing");

  // Retry-safe create: the same Idempotency-Key gets the first answer back.
  const keyed = async () =>
    await api.POST("/api/{user_id}/tasks", {
      ...own(bob),
      headers: { "Idempotency-Key": `ts-check-${run}` },
      body: { title: "Once only" },
    });
  const first = await keyed();
  const once = expectTask(expectData(first, 201, "keyed create"), { title: "Once only" }, "keyed");
  const repeat = await keyed();
  expectEqual(expectData(repeat, 201, "keyed create again"), once, "the repeat's body");
  expectEqual(repeat.response.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed");
  expectEqual(first.response.headers.get("idempotent-replayed"), null, "first: not a replay");
  expectNoContent(await api.DELETE("/api/{user_id}/tasks/{task_id}", item(bob, once.id)), "DELETE once");

  // A 422 problem lists every error; submitted values are never echoed.
  const invalidCreate = await api.POST("/api/{user_id}/tasks", {
    ...own(alice),
    // The types rightly refuse `id`; cast to send what a careless client might.
    body: { title: "   ", id: 7 } as unknown as components["schemas"]["TaskCreate"],
  });
  const problem = expectValidationProblem(
    invalidCreate,
    [
      ["body", "title"],
      ["body", "id"],
    ],
    "POST an empty title and an id",
  );
  expectTrue(problem.detail.includes("1 more"), `422 detail counts the rest: ${problem.detail}`);
  expectValidationProblem(
    await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: alice }, query: { limit: 0 } } }),
    [["query", "limit"]],
    "GET with limit=0",
  );
  expectEqual((await list(alice, {})).total, 3, "invalid requests created nothing");

  // Delete: 204 once, then the task is gone for good.
  expectNoContent(
    await api.DELETE("/api/{user_id}/tasks/{task_id}", item(alice, plants.id)),
    "DELETE plants",
  );
  expectProblem(
    await api.GET("/api/{user_id}/tasks/{task_id}", item(alice, plants.id)),
    404,
    TASK_NOT_FOUND,
    "GET deleted plants",
  );
  expectProblem(
    await api.DELETE("/api/{user_id}/tasks/{task_id}", item(alice, plants.id)),
    404,
    TASK_NOT_FOUND,
    "DELETE plants again",
  );
  expectNoContent(await api.DELETE("/api/{user_id}/tasks/{task_id}", item(bob, gym.id)), "DELETE gym");

  const remaining = await list(alice, { sort: "title" });
  expectEqual(remaining.total, 2, "alice's tasks after the delete: X-Total-Count");
  expectEqual(remaining.tasks, [guarded, report], "alice's tasks after the delete");
  expectEqual((await list(bob, {})).total, 0, "bob has no tasks left");
  expectEqual(
    await tagsOf(alice),
    [
      { name: "Dairy", count: 1 },
      { name: "errands", count: 1 },
    ],
    "alice's tags after the delete: home is gone, Dairy named by the spelling left",
  );

  if (jwtSecret !== undefined && jwtSecret !== "") {
    const anonymous = createClient<paths>({ baseUrl });
    expectProblem(
      await anonymous.GET("/api/{user_id}/tasks", own(alice)),
      401,
      "urn:todo-api:unauthorized",
      "GET alice's tasks without a token",
    );
    const asBob = createClient<paths>({ baseUrl });
    asBob.use(bearerToken(() => hs256Token(bob, jwtSecret)));
    expectProblem(
      await asBob.GET("/api/{user_id}/tasks", own(alice)),
      403,
      "urn:todo-api:forbidden",
      "GET alice's tasks with bob's token",
    );
  }

  // A repeating task: completing it creates the next occurrence, which the answer names
  // (next_occurrence_id and a Link); 09:00 in New York stays 09:00 across the DST change.
  const carol = `ts.carol_${run}`;
  const meeting = await create(carol, {
    title: "Team meeting",
    due_at: "2027-03-08T09:00:00-05:00",
    recurrence: { frequency: "weekly", tz: "America/New_York" },
  });
  expectEqual(
    meeting.recurrence?.rrule,
    "FREQ=WEEKLY;INTERVAL=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
    "meeting: its RRULE, with its local time of day",
  );
  expectEqual(meeting.series_id, meeting.id, "meeting: the first of its series");
  const completion = await api.PATCH(
    "/api/{user_id}/tasks/{task_id}/complete",
    item(carol, meeting.id),
  );
  const nextId = expectData(completion, 200, "complete the meeting").next_occurrence_id;
  if (nextId === null) {
    fail("complete the meeting: no next_occurrence_id");
  }
  const link = completion.response.headers.get("link") ?? "";
  expectTrue(
    link.endsWith(`/tasks/${nextId}>; rel="next-occurrence"`),
    `complete the meeting: Link ${show(link)}`,
  );
  const following = expectData(
    await api.GET("/api/{user_id}/tasks/{task_id}", item(carol, nextId)),
    200,
    "read the next meeting",
  );
  expectEqual(following.due_at, "2027-03-15T13:00:00Z", "next meeting: 09:00 in New York");
  expectEqual(following.series_id, meeting.id, "next meeting: same series");
  expectEqual(following.completed, false, "next meeting: open");

  // A reminder 15 minutes before the next meeting: listed once its time has come, until
  // acknowledged.
  const reminded = expectData(
    await api.PATCH("/api/{user_id}/tasks/{task_id}", {
      ...item(carol, nextId),
      body: { reminder: { minutes_before: 15 } },
    }),
    200,
    "set a reminder",
  );
  expectEqual(reminded.reminder?.at, "2027-03-15T12:45:00Z", "reminder: 15 minutes before");
  const dueReminders = async (what: string) =>
    expectData(
      await api.GET("/api/{user_id}/reminders", {
        params: { path: { user_id: carol }, query: { until: "2027-03-15T13:00:00Z" } },
      }),
      200,
      what,
    ).map((task) => task.id);
  expectEqual(await dueReminders("reminders due"), [nextId], "reminders due");
  const acknowledged = expectData(
    await api.POST("/api/{user_id}/tasks/{task_id}/reminder/ack", item(carol, nextId)),
    200,
    "acknowledge the reminder",
  );
  expectTrue(acknowledged.reminder?.acknowledged_at != null, "reminder: acknowledged_at");
  expectEqual(await dueReminders("reminders after the ack"), [], "reminders after the ack");

  // The package's own client (createTodoClient) and the README's example, on the same server.
  await checkTodoClient(baseUrl, jwtSecret, run);
  await checkExample(baseUrl, jwtSecret);

  const mode = jwtSecret ? "with tokens" : "the path is the caller";
  console.log(
    `TypeScript client check passed against ${baseUrl}: the API through openapi-fetch, ` +
      `createTodoClient and the README example (${mode}; users ${alice}, ${bob}).`,
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof CheckFailure ? `FAILED: ${error.message}` : error);
  process.exitCode = 1;
});
