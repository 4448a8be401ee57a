// Sending the caller's token: an openapi-fetch middleware for servers run with AUTH_MODE=jwt.
//
//   import createClient from "openapi-fetch";
//   import { bearerToken } from "./auth.js";
//   const api = createClient<paths>({ baseUrl });
//   api.use(bearerToken(async () => (await authClient.token()).data?.token));
//
// The callback runs for every request, so it can hand out a fresh token when the old one is
// about to expire (Better Auth's last 15 minutes). It gets the outgoing Request, for clients
// that act for several users; returning undefined sends the request without a token.

import type { Middleware } from "openapi-fetch";

export type TokenSource = (request: Request) => string | undefined | Promise<string | undefined>;

export function bearerToken(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      const value = await token(request);
      if (value !== undefined) {
        request.headers.set("Authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
}
