// The check of the package's own client (createTodoClient) against a live server, and of the
// README's example, which is src/example.ts verbatim (run-check.sh compares the two).
//
// check.ts proves the API keeps its contract through bare openapi-fetch; this proves the wrapper
// turns that contract into what it promises: typed results, ETags in and out, Idempotency-Key
// replays and retries, 304 as `notModified`, Link pages, and problems as typed exceptions. A
// recording fetch sits under the client so the headers it sends are checked too, not just the
// results it returns.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import {
  createTodoClient,
  newIdempotencyKey,
  PreconditionFailedError,
  ProblemType,
  TodoApiError,
  type Task,
  type TodoClient,
  type Recurrence,
  type Reminder,
} from "./index.js";
import { expectEqual, expectTask, expectTrue, fail, hs256Token, show } from "./check-support.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// 25 hours apart (UTC+14 and UTC-11): a day that is still today in Pago Pago has always ended
// in Kiritimati, whatever the time of the run.
const AHEAD = "Pacific/Kiritimati";
const BEHIND = "Pacific/Pago_Pago";

interface Exchange {
  method: string;
  url: URL;
  sent: Headers;
  status: number;
  received: Headers;
}

function recordingFetch(log: Exchange[]): (request: Request) => Promise<Response> {
  return async (request) => {
    const sent = new Headers(request.headers);
    const response = await fetch(request);
    log.push({
      method: request.method,
      url: new URL(request.url),
      sent,
      status: response.status,
      received: response.headers,
    });
    return response;
  };
}

// Today in `timeZone`, as YYYY-MM-DD.
function dayIn(timeZone: string): string {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  });
  const parts = Object.fromEntries(format.formatToParts(new Date()).map((p) => [p.type, p.value]));
  return `${parts["year"]}-${parts["month"]}-${parts["day"]}`;
}

function last(log: Exchange[], what: string): Exchange {
  return log.at(-1) ?? fail(`${what}: no request was sent`);
}

async function expectRejects<E extends Error>(
  promise: Promise<unknown>,
  kind: abstract new (...args: never[]) => E,
  what: string,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof kind) {
      return error;
    }
    fail(`${what}: expected a ${kind.name}, got ${show(error)}`);
  }
  fail(`${what}: expected a ${kind.name}, but the call succeeded`);
}

function expectApiError(error: TodoApiError, status: number, type: string, what: string): void {
  expectEqual(error.status, status, `${what}: status`);
  expectEqual(error.type, type, `${what}: type`);
  expectTrue(error.title !== "" && error.detail !== "", `${what}: title and detail: ${show(error)}`);
  expectTrue(error.message.includes(error.detail), `${what}: the message carries the detail`);
}

function problemResponse(
  status: number,
  statusText: string,
  type: string,
  headers: Record<string, string>,
): Response {
  const body = { type, title: statusText, status, detail: "Simulated by the check." };
  return new Response(JSON.stringify(body), {
    status,
    statusText,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

export async function checkTodoClient(
  baseUrl: string,
  jwtSecret: string | undefined,
  run: string,
): Promise<void> {
  const tokenFor = (user: string) => (jwtSecret ? hs256Token(user, jwtSecret) : undefined);
  const exchanges: Exchange[] = [];
  const carolId = `ts.carol_${run}`;
  // An async token source, the way Better Auth's client hands out its short-lived JWTs.
  const carol = createTodoClient({
    baseUrl,
    userId: carolId,
    token: async () => tokenFor(carolId),
    fetch: recordingFetch(exchanges),
  });

  expectEqual(await carol.health(), { status: "ok" }, "health()");
  expectEqual(await carol.ready(), { status: "ok" }, "ready()");
  expectEqual((await carol.raw.GET("/health")).data, { status: "ok" }, "raw: openapi-fetch");
  if (jwtSecret) {
    expectEqual(
      last(exchanges, "ready()").sent.get("authorization"),
      `Bearer ${tokenFor(carolId)}`,
      "the token function's value goes out as a Bearer token",
    );
  }

  // Create with an Idempotency-Key: the repeat is the same task, replayed, and nothing new.
  const key = newIdempotencyKey();
  expectTrue(UUID_V4.test(key), `newIdempotencyKey() is a version-4 UUID: ${key}`);
  const body = { title: "  Buy milk ", description: "2 litres" };
  const created = await carol.create(body, { idempotencyKey: key });
  const milk = expectTask(
    created.task,
    { user_id: carolId, title: "Buy milk", description: "2 litres", completed: false },
    "create()",
  );
  expectEqual(created.replayed, false, "create(): a first request is not a replay");
  expectEqual(last(exchanges, "create()").sent.get("idempotency-key"), key, "create(): key sent");
  expectEqual(
    decodeURIComponent(new URL(created.location).pathname),
    `/api/${carolId}/tasks/${milk.id}`,
    "create(): location",
  );
  expectEqual(
    await carol.create(body, { idempotencyKey: key }),
    { ...created, replayed: true },
    "create() again with the same key: the same task, replayed",
  );
  const reused = await expectRejects(
    carol.create({ title: "Something else" }, { idempotencyKey: key }),
    TodoApiError,
    "create() with a used key and another body",
  );
  expectApiError(reused, 422, ProblemType.ValidationError, "a used key with another body");
  expectEqual(reused.errors.map((error) => error.loc), [["header", "Idempotency-Key"]], "422 errors");

  // `retries`: the first response is lost on the way back; the retry carries the same made-up
  // key, so it gets the task the first attempt created instead of a second one.
  const sentKeys: (string | null)[] = [];
  let responsesToLose = 1;
  const flaky = createTodoClient({
    baseUrl,
    userId: carolId,
    token: tokenFor(carolId),
    fetch: async (request) => {
      sentKeys.push(request.headers.get("idempotency-key"));
      const response = await fetch(request);
      if (responsesToLose > 0) {
        responsesToLose -= 1;
        await response.body?.cancel();
        throw new TypeError("fetch failed: the check dropped the response");
      }
      return response;
    },
  });
  const retried = await flaky.create({ title: "Call mum" }, { retries: 2 });
  expectEqual(retried.replayed, true, "create({ retries }) after a lost response: replayed");
  expectEqual(sentKeys.length, 2, "create({ retries }): attempts");
  expectTrue(UUID_V4.test(sentKeys[0] ?? ""), `create({ retries }) made up a key: ${show(sentKeys)}`);
  expectEqual(sentKeys[1], sentKeys[0], "create({ retries }): the retry reuses the key");
  expectEqual((await carol.list({ q: "Call mum" })).total, 1, "the lost response created one task");

  // A 503 with Retry-After is retried when asked to, and otherwise surfaces typed.
  let outages = 0;
  const shaky = createTodoClient({
    baseUrl,
    userId: carolId,
    token: tokenFor(carolId),
    fetch: async (request) => {
      if (outages > 0) {
        outages -= 1;
        return problemResponse(503, "Service Unavailable", ProblemType.DatabaseUnavailable, {
          "Retry-After": "0",
        });
      }
      return await fetch(request);
    },
  });
  outages = 1;
  const afterOutage = await shaky.create({ title: "Pay rent" }, { retries: 1 });
  expectEqual(afterOutage.replayed, false, "503, then retried: the retry created the task");
  outages = 1;
  const outage = await expectRejects(shaky.create({ title: "x" }), TodoApiError, "503, no retries");
  expectApiError(outage, 503, ProblemType.DatabaseUnavailable, "503 without retries");
  expectEqual(outage.retryAfter, 0, "503: retryAfter");
  const proxied = createTodoClient({
    baseUrl,
    userId: carolId,
    fetch: async () =>
      new Response("<html>Bad Gateway</html>", { status: 502, statusText: "Bad Gateway" }),
  });
  const gateway = await expectRejects(proxied.stats(), TodoApiError, "a proxy's HTML 502");
  expectEqual(
    [gateway.status, gateway.type, gateway.title, gateway.detail],
    [502, ProblemType.AboutBlank, "Bad Gateway", "<html>Bad Gateway</html>"],
    "a 502 that is not a problem document",
  );

  // Reads carry the ETag; If-None-Match with it is a 304, reported as notModified.
  expectEqual(await carol.get(milk.id), milk, "get()");
  expectEqual(last(exchanges, "get()").received.get("etag"), milk.etag, "get(): ETag header = etag");
  expectEqual(
    await carol.getIfChanged(milk.id, milk.etag),
    { notModified: true, etag: milk.etag },
    "getIfChanged() while unchanged",
  );
  expectEqual(last(exchanges, "getIfChanged()").status, 304, "getIfChanged(): the answer was a 304");

  // Writes with If-Match: the current tag goes through, a stale one is a typed 412.
  const edited = await carol.update(milk.id, { description: "1 litre" }, { ifMatch: milk.etag });
  expectTask(edited, { id: milk.id, title: "Buy milk", description: "1 litre" }, "update()");
  expectEqual(last(exchanges, "update()").sent.get("if-match"), milk.etag, "update(): If-Match");
  expectTrue(edited.etag !== milk.etag, "update(): the ETag changes");
  expectEqual(
    await carol.getIfChanged(milk.id, milk.etag),
    { notModified: false, etag: edited.etag, task: edited },
    "getIfChanged() after a change",
  );
  const staleWrites: [string, (client: TodoClient) => Promise<unknown>][] = [
    ["update", (client) => client.update(milk.id, { title: "lost update" }, { ifMatch: milk.etag })],
    ["replace", (client) => client.replace(milk.id, { title: "lost update" }, { ifMatch: milk.etag })],
    ["toggle", (client) => client.toggle(milk.id, { ifMatch: milk.etag })],
    ["setCompleted", (client) => client.setCompleted(milk.id, true, { ifMatch: milk.etag })],
    ["delete", (client) => client.delete(milk.id, { ifMatch: milk.etag })],
  ];
  for (const [name, write] of staleWrites) {
    const what = `${name}() with a stale If-Match`;
    const stale = await expectRejects(write(carol), PreconditionFailedError, what);
    expectApiError(stale, 412, ProblemType.PreconditionFailed, what);
    expectEqual(stale.etag, edited.etag, `${what}: the error carries the current ETag`);
  }
  expectEqual(await carol.get(milk.id), edited, "the stale writes changed nothing");
  const replaced = await carol.replace(milk.id, { title: "Buy oat milk" }, { ifMatch: edited.etag });
  expectTask(replaced, { title: "Buy oat milk", description: null, completed: false }, "replace()");
  const done = await carol.toggle(milk.id, { ifMatch: replaced.etag });
  expectTask(done, { title: "Buy oat milk", completed: true }, "toggle()");
  expectEqual(
    await carol.setCompleted(milk.id, true, { ifMatch: done.etag }),
    done,
    "setCompleted() to the current state changes nothing",
  );
  const reopened = await carol.setCompleted(milk.id, false);
  expectTask(reopened, { completed: false, completed_at: null }, "setCompleted(false)");

  // Delete, then every kind of access to the task is a typed 404.
  await carol.delete(milk.id, { ifMatch: reopened.etag });
  expectEqual(last(exchanges, "delete()").status, 204, "delete(): 204");
  for (const [name, access] of [
    ["get", () => carol.get(milk.id)],
    ["getIfChanged", () => carol.getIfChanged(milk.id, reopened.etag)],
    ["update", () => carol.update(milk.id, { title: "x" })],
    ["delete", () => carol.delete(milk.id)],
  ] as const) {
    const missing = await expectRejects(access(), TodoApiError, `${name}() of a deleted task`);
    expectApiError(missing, 404, ProblemType.TaskNotFound, `${name}() of a deleted task`);
    expectTrue(!(missing instanceof PreconditionFailedError), `${name}(): a 404 is not a 412`);
  }

  // A 422 lists its field errors.
  const blank = "create() a blank title";
  const invalid = await expectRejects(carol.create({ title: "   " }), TodoApiError, blank);
  expectApiError(invalid, 422, ProblemType.ValidationError, blank);
  expectEqual(invalid.errors.map((error) => error.loc), [["body", "title"]], `${blank}: errors`);
  const badLimit = await expectRejects(carol.list({ limit: 0 }), TodoApiError, "list({ limit: 0 })");
  expectEqual(badLimit.errors.map((error) => error.loc), [["query", "limit"]], "limit 0: errors");

  // Pages: five tasks, two to a page, followed through Link both ways and by all().
  const erinId = `ts.erin_${run}`;
  const erin = createTodoClient({
    baseUrl,
    userId: erinId,
    token: tokenFor(erinId),
    fetch: recordingFetch(exchanges),
  });
  const made: Task[] = [];
  for (let n = 1; n <= 5; n += 1) {
    made.push((await erin.create({ title: `task ${n}` })).task);
  }
  const query = { sort: "created_at", limit: 2 } as const;
  const first = await erin.list(query);
  expectEqual([first.tasks, first.total, first.prev], [made.slice(0, 2), 5, null], "list() page 1");
  const second = (await erin.nextPage(first)) ?? fail("nextPage(page 1): null");
  expectEqual(second.tasks, made.slice(2, 4), "nextPage(page 1)");
  expectEqual(
    Object.fromEntries(last(exchanges, "nextPage()").url.searchParams),
    { sort: "created_at", limit: "2", offset: "2" },
    "nextPage(): the Link's query, sent to our baseUrl",
  );
  const third = (await erin.nextPage(second)) ?? fail("nextPage(page 2): null");
  expectEqual([third.tasks, third.next], [made.slice(4), null], "nextPage(page 2): the last page");
  expectEqual(await erin.nextPage(third), null, "nextPage(last page)");
  expectEqual((await erin.prevPage(second))?.tasks, first.tasks, "prevPage(page 2)");
  expectEqual(await erin.prevPage(first), null, "prevPage(page 1)");
  const requestsBefore = exchanges.length;
  const everything: Task[] = [];
  for await (const task of erin.all(query)) {
    everything.push(task);
  }
  expectEqual(everything, made, "all(): every task, in order");
  expectEqual(
    exchanges.slice(requestsBefore).map((exchange) => exchange.url.searchParams.get("offset")),
    [null, "2", "4"],
    "all(): one request per page",
  );
  expectEqual((await erin.list({ q: "TASK 3" })).tasks, [made[2]], "list({ q }) ignores case");

  // Polling a page: 304 while nothing on it changes.
  expectEqual(
    await erin.listIfChanged(query, first.etag),
    { notModified: true, etag: first.etag },
    "listIfChanged() while unchanged",
  );
  const renamed = await erin.update(made[0]?.id ?? 0, { title: "task one" });
  const polled = await erin.listIfChanged(query, first.etag);
  if (polled.notModified) {
    fail("listIfChanged() after a change: still notModified");
  }
  expectEqual(polled.page.tasks, [renamed, made[1]], "listIfChanged() after a change: the new page");
  expectTrue(polled.etag !== first.etag, "listIfChanged() after a change: a new etag");
  expectEqual(polled.etag, polled.page.etag, "listIfChanged(): the etag is the page's");

  // The bulk operations and the counters they change.
  expectEqual(await erin.stats(), { total: 5, pending: 5, completed: 0, overdue: 0, due_today: 0 }, "stats()");
  await erin.setCompleted(made[1]?.id ?? 0, true);
  expectEqual(await erin.completeAll(true), { updated: 4 }, "completeAll(true)");
  expectEqual(await erin.stats(), { total: 5, pending: 0, completed: 5, overdue: 0, due_today: 0 }, "stats() after completeAll");
  expectEqual(await erin.completeAll(false), { updated: 5 }, "completeAll(false)");
  await erin.toggle(made[0]?.id ?? 0);
  expectEqual(await erin.deleteCompleted(), { deleted: 1 }, "deleteCompleted()");
  expectEqual(await erin.stats(), { total: 4, pending: 4, completed: 0, overdue: 0, due_today: 0 }, "after deleteCompleted");
  await erin.completeAll(true);
  expectEqual(await erin.deleteCompleted(), { deleted: 4 }, "deleteCompleted() of the rest");

  // Tags and the other filters: array options go out as one comma-separated parameter.
  const frankId = `ts.frank_${run}`;
  const frank = createTodoClient({
    baseUrl,
    userId: frankId,
    token: tokenFor(frankId),
    fetch: recordingFetch(exchanges),
  });
  const sentQuery = (what: string) => Object.fromEntries(last(exchanges, what).url.searchParams);
  const report = expectTask(
    (await frank.create({ title: "Report", priority: "high", tags: ["Work", " urgent "] })).task,
    { title: "Report", priority: "high", tags: ["Work", "urgent"] },
    "create() with tags: trimmed, in order",
  );
  const groceries = (await frank.create({ title: "Shop", priority: "low", tags: ["home"] })).task;
  const boss = (await frank.create({ title: "Call the boss", tags: ["work"] })).task;
  const nap = (await frank.create({ title: "Nap" })).task;
  expectEqual(
    [groceries.tags, boss.tags, nap.tags],
    [["home"], ["work"], []],
    "create(): the tags given, none by default",
  );
  const oldest = { sort: "created_at" } as const;
  const tagged = await frank.list({ ...oldest, tags: ["WORK"] });
  expectEqual([tagged.tasks, tagged.total], [[report, boss], 2], "list({ tags }) ignores case");
  expectEqual(
    (await frank.list({ ...oldest, tags: ["work", "URGENT"] })).tasks,
    [report],
    "list({ tags }): tasks carrying every one of them",
  );
  expectEqual(
    sentQuery("list({ tags })"),
    { sort: "created_at", tags: "work,URGENT" },
    "list({ tags }): one comma-separated parameter",
  );
  expectEqual((await frank.list({ tags: "home" })).tasks, [groceries], "list({ tags: string })");
  expectEqual(
    (await frank.list({ ...oldest, tags: [] })).tasks,
    [report, groceries, boss, nap],
    "list({ tags: [] }): no filter",
  );
  expectEqual(sentQuery("list({ tags: [] })"), { sort: "created_at" }, "tags: [] is not sent");
  expectEqual(
    (await frank.list({ sort: "-priority", priority: ["high", "low"] })).tasks,
    [report, groceries],
    "list({ priority: [high, low] })",
  );
  expectEqual(
    sentQuery("list({ priority })"),
    { sort: "-priority", priority: "high,low" },
    "list({ priority }): one comma-separated parameter",
  );
  expectEqual(
    await frank.tags(),
    [
      { name: "home", count: 1 },
      { name: "urgent", count: 1 },
      { name: "Work", count: 2 },
    ],
    "tags(): by name ignoring case, Work and work as one tag",
  );

  const retags = { tags: ["home", "Later"] };
  const retagged = await frank.update(report.id, retags, { ifMatch: report.etag });
  expectTask(retagged, { title: "Report", ...retags }, "update({ tags })");
  expectTrue(retagged.etag !== report.etag, "update({ tags }): the ETag changes");
  const retitled = await frank.update(report.id, { title: "Quarterly report" });
  expectEqual(retitled.tags, retagged.tags, "update() without tags keeps them");
  const restored = await frank.replace(report.id, { title: "Report" });
  expectTask(restored, { priority: "high", tags: retagged.tags }, "replace() keeps absent tags");
  expectEqual(
    await frank.tags(),
    [
      { name: "home", count: 2 },
      { name: "Later", count: 1 },
      { name: "work", count: 1 },
    ],
    "tags() after update({ tags }): urgent is gone, work is named by the spelling left",
  );
  for (const [name, write] of [
    ["create", () => frank.create({ title: "Twice", tags: ["Work", "work"] })],
    ["update", () => frank.update(report.id, { tags: ["Work", "work"] })],
  ] as const) {
    const what = `${name}() with tags Work and work`;
    const twice = await expectRejects(write(), TodoApiError, what);
    expectApiError(twice, 422, ProblemType.ValidationError, what);
    expectEqual(twice.errors.map((error) => error.loc), [["body", "tags"]], `${what}: errors`);
  }
  expectEqual(await frank.get(report.id), restored, "the refused update changed nothing");
  expectEqual((await frank.list()).total, 4, "the refused create created nothing");

  // Due dates and `tz`: the day that is today in Pago Pago is over in Kiritimati.
  const dueChecks = async (day: string) => {
    const due = await frank.update(nap.id, { due_date: day });
    const behind = await frank.stats({ tz: BEHIND });
    const sent = sentQuery("stats({ tz })");
    return {
      due,
      behind,
      sent,
      ahead: await frank.stats({ tz: AHEAD }),
      overdueBehind: (await frank.list({ overdue: true, tz: BEHIND })).tasks,
      overdueAhead: (await frank.list({ overdue: true, tz: AHEAD })).tasks,
    };
  };
  let day = dayIn(BEHIND);
  let seen = await dueChecks(day);
  if (dayIn(BEHIND) !== day) {
    // Midnight passed in Pago Pago meanwhile: once more, on the new day.
    day = dayIn(BEHIND);
    seen = await dueChecks(day);
  }
  expectTask(seen.due, { due_date: day, due_at: null }, "update({ due_date })");
  expectEqual(seen.sent, { tz: BEHIND }, "stats({ tz }): the tz parameter");
  const counts = { total: 4, pending: 4, completed: 0 };
  expectEqual(seen.behind, { ...counts, overdue: 0, due_today: 1 }, `stats({ tz: ${BEHIND} })`);
  expectEqual(seen.ahead, { ...counts, overdue: 1, due_today: 0 }, `stats({ tz: ${AHEAD} })`);
  expectEqual(seen.overdueBehind, [], `list({ overdue: true, tz: ${BEHIND} })`);
  expectEqual(seen.overdueAhead, [seen.due], `list({ overdue: true, tz: ${AHEAD} })`);
  expectEqual(
    (await frank.list({ has_due: true, due_from: day, due_to: day, tz: BEHIND })).tasks,
    [seen.due],
    "list({ has_due, due_from, due_to, tz })",
  );
  expectEqual((await frank.list({ has_due: false })).total, 3, "list({ has_due: false })");
  expectEqual(
    (await frank.list({ sort: "due" })).tasks[0],
    seen.due,
    "list({ sort: due }): the task with a due first",
  );

  // A repeating task with a reminder before its due: completing it makes the next occurrence,
  // whose reminder dueReminders() lists until acknowledgeReminder().
  const ginaId = `ts.gina_${run}`;
  const gina = createTodoClient({ baseUrl, userId: ginaId, token: tokenFor(ginaId) });
  const recurrence: Recurrence = { frequency: "monthly", month_day: -1 };
  const reminder: Reminder = { minutes_before: 60, tz: "Europe/Paris" };
  const rent = (
    await gina.create({ title: "Pay rent", due_date: "2027-01-31", recurrence, reminder })
  ).task;
  expectEqual(rent.recurrence?.rrule, "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=-1", "create({ recurrence })");
  const paid = await gina.setCompleted(rent.id, true);
  const nextRent = await gina.get(paid.next_occurrence_id ?? 0);
  expectEqual(nextRent.due_date, "2027-02-28", "the next occurrence: the last day of February");
  expectEqual(nextRent.reminder?.at, "2027-02-27T22:00:00Z", "its reminder: 23:00 in Paris the day before");
  expectEqual(
    (await gina.dueReminders({ until: "2027-02-28T00:00:00Z" })).map((task) => task.id),
    [nextRent.id],
    "dueReminders(): the open occurrence's reminder",
  );
  const acknowledged = await gina.acknowledgeReminder(nextRent.id);
  expectTrue(acknowledged.reminder?.acknowledged_at != null, "acknowledgeReminder()");
  expectEqual(await gina.dueReminders({ until: "2027-02-28T00:00:00Z" }), [], "after the ack");

  if (jwtSecret) {
    const anonymous = createTodoClient({ baseUrl, userId: carolId, token: async () => undefined });
    const unauthorized = await expectRejects(anonymous.stats(), TodoApiError, "no token");
    expectApiError(unauthorized, 401, ProblemType.Unauthorized, "stats() without a token");
    const impostor = createTodoClient({ baseUrl, userId: carolId, token: tokenFor(erinId) });
    const forbidden = await expectRejects(impostor.stats(), TodoApiError, "stats() with erin's token");
    expectApiError(forbidden, 403, ProblemType.Forbidden, "stats() with erin's token");
  }
}

// The README's example as a user would run it: a separate process, importing the package by
// name. TODO_API_EXAMPLE names the compiled file (run-check.sh passes the one built in a scratch
// project that installed the packed tarball); by default it is build/example.js beside this.
export async function checkExample(baseUrl: string, jwtSecret: string | undefined): Promise<void> {
  const example =
    process.env["TODO_API_EXAMPLE"] || fileURLToPath(new URL("./example.js", import.meta.url));
  const token = jwtSecret ? hs256Token("alice", jwtSecret) : undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, TODO_API_BASE_URL: baseUrl };
  if (token !== undefined) {
    env["TODO_API_TOKEN"] = token;
  }
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(process.execPath, [example], { env }));
  } catch (error) {
    fail(`the README example (${example}) failed: ${show(error)}`);
  }
  const conflict = /^task (\d+) changed meanwhile; its ETag is now "[^"]+"$/m.exec(stdout);
  const taskId = Number(conflict?.[1] ?? fail(`the example did not report the 412: ${show(stdout)}`));
  expectTrue(stdout.includes(`\n${taskId} Buy milk\n`), `the example lists its task: ${show(stdout)}`);
  expectTrue(
    /^\{ total: \d+, pending: \d+, completed: \d+, overdue: \d+, due_today: \d+ \}$/m.test(stdout),
    `the example prints the stats: ${show(stdout)}`,
  );
  const alice = createTodoClient({ baseUrl, userId: "alice", token });
  const gone = await expectRejects(alice.get(taskId), TodoApiError, "the example's task afterwards");
  expectEqual(gone.status, 404, "the example deleted its task");
}
