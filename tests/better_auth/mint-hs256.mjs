// docs/auth.md's shared-secret snippet, as a script: prints an HS256 token for USER_ID,
// signed with TODO_API_JWT_SECRET (the API's AUTH_JWT_SECRET) by `jose`.
import { SignJWT } from "jose";

const secret = new TextEncoder().encode(process.env.TODO_API_JWT_SECRET);
const token = await new SignJWT({})
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(process.env.USER_ID)
  .setIssuedAt()
  .setExpirationTime("15m")
  .sign(secret);
console.log(token);
