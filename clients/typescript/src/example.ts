import { createTodoClient, PreconditionFailedError } from "todo-api-client";

const todos = createTodoClient({
  baseUrl: process.env["TODO_API_BASE_URL"] ?? "http://127.0.0.1:8000",
  userId: "alice",
  token: process.env["TODO_API_TOKEN"], // or async () => (await authClient.token()).data?.token
});

const { task } = await todos.create({ title: "Buy milk" }, { retries: 3 }); // one Idempotency-Key
const edited = await todos.update(task.id, { description: "2 litres" }, { ifMatch: task.etag });
try {
  await todos.update(task.id, { title: "Buy oat milk" }, { ifMatch: task.etag }); // stale ETag
} catch (error) {
  if (!(error instanceof PreconditionFailedError)) throw error;
  console.log(`task ${task.id} changed meanwhile; its ETag is now ${error.etag}`);
}
for await (const pending of todos.all({ status: "pending" })) console.log(pending.id, pending.title);
console.log(await todos.stats());
await todos.delete(task.id, { ifMatch: edited.etag });
