// Every error the API answers is an RFC 9457 problem (application/problem+json). These classes
// turn one into an exception that keeps what a caller acts on: the status and `type` to branch
// on, `errors` to show next to form fields, `retryAfter` to wait, and on a 412 the ETag the task
// has now, so that the caller can re-read, merge and retry without another round trip to learn it.

import type { components } from "./schema.js";

export type Problem = components["schemas"]["Problem"];
export type ValidationProblem = components["schemas"]["ValidationProblem"];
export type FieldError = components["schemas"]["FieldError"];

/** The problem `type`s the API documents. Anything else arrives as `about:blank`. */
export const ProblemType = {
  TaskNotFound: "urn:todo-api:task-not-found",
  PreconditionFailed: "urn:todo-api:precondition-failed",
  IdempotencyKeyInFlight: "urn:todo-api:idempotency-key-in-flight",
  ValidationError: "urn:todo-api:validation-error",
  UnsupportedMediaType: "urn:todo-api:unsupported-media-type",
  DatabaseUnavailable: "urn:todo-api:database-unavailable",
  Unauthorized: "urn:todo-api:unauthorized",
  Forbidden: "urn:todo-api:forbidden",
  KeysUnavailable: "urn:todo-api:keys-unavailable",
  AboutBlank: "about:blank",
} as const;

/** An error answer of the Todo API, as its problem document says. */
export class TodoApiError extends Error {
  override name = "TodoApiError";
  /** The HTTP status, e.g. 404. */
  readonly status: number;
  /** The problem type, one of `ProblemType` for the API's own errors. */
  readonly type: string;
  /** The HTTP reason phrase, e.g. "Not Found". */
  readonly title: string;
  /** One sentence on what went wrong with this request. */
  readonly detail: string;
  /** A 422's field errors (`loc` starts with body, query, path or header); empty otherwise. */
  readonly errors: readonly FieldError[];
  /** Seconds to wait before retrying (`Retry-After`: 409 in flight, 503), if the server said. */
  readonly retryAfter: number | undefined;
  /** The `ETag` header: on a 412, the task's current tag. */
  readonly etag: string | undefined;
  /** `X-Request-ID`: quote it when reporting a 500. */
  readonly requestId: string | undefined;
  /** The raw response; its body has already been read. */
  readonly response: Response;

  constructor(response: Response, body: unknown) {
    const problem = asProblem(body);
    const status = response.status;
    const title = problem?.title ?? (response.statusText || `HTTP ${status}`);
    // A body that is not a problem comes from something in front of the API (a proxy's HTML
    // page, say): a short excerpt is more useful in a log line than nothing.
    const detail = problem?.detail ?? (typeof body === "string" ? body.trim().slice(0, 200) : "");
    super(detail === "" ? `${status} ${title}` : `${status} ${title}: ${detail}`);
    this.status = status;
    this.type = problem?.type ?? ProblemType.AboutBlank;
    this.title = title;
    this.detail = detail;
    this.errors = problem?.errors ?? [];
    this.retryAfter = parseRetryAfter(response.headers.get("retry-after"));
    this.etag = response.headers.get("etag") ?? undefined;
    this.requestId = response.headers.get("x-request-id") ?? undefined;
    this.response = response;
  }
}

/**
 * 412: the `If-Match` tag is not the task's current one, and nothing was changed. `etag` is the
 * current tag: read the task again (or `getIfChanged`), merge, and retry with it.
 */
export class PreconditionFailedError extends TodoApiError {
  override name = "PreconditionFailedError";
  declare readonly etag: string;
}

/** The exception for an error response: a `PreconditionFailedError` for a 412 with its ETag. */
export function errorFromResponse(response: Response, body: unknown): TodoApiError {
  if (response.status === 412 && response.headers.has("etag")) {
    return new PreconditionFailedError(response, body);
  }
  return new TodoApiError(response, body);
}

function asProblem(body: unknown): (Problem & { errors?: FieldError[] }) | undefined {
  if (typeof body !== "object" || body === null) {
    return undefined;
  }
  const { type, title, status, detail, errors } = body as Record<string, unknown>;
  if (typeof title !== "string" || typeof status !== "number" || typeof detail !== "string") {
    return undefined;
  }
  return {
    ...(typeof type === "string" ? { type } : {}),
    title,
    status,
    detail,
    ...(Array.isArray(errors) ? { errors: errors as FieldError[] } : {}),
  };
}

// RFC 9110 §10.2.3: either delay-seconds or an HTTP-date.
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) {
    return undefined;
  }
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    return Number(trimmed);
  }
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
