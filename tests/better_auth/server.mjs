// A real Better Auth server for tests/test_better_auth.py: memory adapter, email sign-up and
// the jwt() plugin, on 127.0.0.1:$PORT. JWT_ALG picks the signing algorithm (default EdDSA).
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
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

createServer(toNodeHandler(auth)).listen(port, "127.0.0.1", () => {
  console.log(`better-auth ready at ${baseURL} (${alg})`);
});
