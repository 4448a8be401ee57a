// A real Better Auth server for tests/test_better_auth.py: memory adapter, email sign-up and
// the jwt() plugin, on 127.0.0.1:$PORT. JWT_ALG picks the signing algorithm (default EdDSA).
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { fromNodeHeaders, toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const port = Number(process.env.PORT);
const baseURL = `http://127.0.0.1:${port}`;
const alg = process.env.JWT_ALG || "EdDSA";

const auth = betterAuth({
  database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
  secret: randomBytes(32).toString("hex"),
  baseURL,
  emailAndPassword: { enabled: true },
  plugins: [jwt(alg === "EdDSA" ? {} : { jwks: { keyPairConfig: { alg } } })],
});

const handleAuth = toNodeHandler(auth);

// What docs/auth.md's server-side snippet does in a Next.js route handler or server component:
// the token of the user whose session cookie came with the request, from auth.api.getToken.
async function serverSideToken(req, res) {
  try {
    const { token } = await auth.api.getToken({ headers: fromNodeHeaders(req.headers) });
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token }));
  } catch (error) {
    res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: String(error) }));
  }
}

createServer((req, res) =>
  req.url === "/server-side-token" ? serverSideToken(req, res) : handleAuth(req, res),
).listen(port, "127.0.0.1", () => {
  console.log(`better-auth ready at ${baseURL} (${alg})`);
});
