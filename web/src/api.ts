// The API clients (gRPC-Web through connect-web, generated from the project's .proto files)
// and the one place a gRPC status becomes words a person can act on.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { MarketService } from "./gen/helium/market/v1/market_pb";
import { MarketAdminService } from "./gen/helium/market/v1/admin_pb";

export interface Api {
  market: Client<typeof MarketService>;
  admin: Client<typeof MarketAdminService>;
}

/** `token()` is read on every call, so a token handed over later is used at once. */
export function createApi(baseUrl: string, token: () => string | null): Api {
  const bearer: Interceptor = (next) => (req) => {
    const t = token();
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer], defaultTimeoutMs: 15_000 });
  return { market: createClient(MarketService, transport), admin: createClient(MarketAdminService, transport) };
}

export interface Problem {
  text: string;
  /** Trying again may work (the request did not finish, or the service was busy). */
  retry: boolean;
  /** The token is missing, invalid or expired. */
  signIn: boolean;
  code: Code | null;
}

/** Every failure as a message; server texts are shown only for the codes whose messages are
 * written for callers (validation, state); anything else gets a fixed sentence. */
export function problem(err: unknown): Problem {
  // A request that got no HTTP answer at all (network, CORS, a lost response) may still have
  // been applied: the fetch failure is not a status from the API.
  if (err instanceof TypeError || (err instanceof ConnectError && err.code === Code.Unknown && /fetch|network/i.test(err.rawMessage))) {
    return { text: "The service could not be reached. Try again: a repeated request is safe.", retry: true, signIn: false, code: Code.Unavailable };
  }
  const e = ConnectError.from(err);
  const said = e.rawMessage;
  const p = (text: string, retry = false, signIn = false): Problem => ({ text, retry, signIn, code: e.code });
  switch (e.code) {
    case Code.Unauthenticated:
      return p("Your session has ended. Sign in again.", false, true);
    case Code.PermissionDenied:
      return p("You are not allowed to do this.");
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return p(said || "The request was not accepted.");
    case Code.NotFound:
      return p(said || "Not found.");
    case Code.AlreadyExists:
      return p(said || "That already exists.");
    case Code.ResourceExhausted:
      return p(said ? `${said}.` : "Too many requests. Wait a moment and try again.", true);
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Canceled:
      return p("The service did not answer in time. Try again: a repeated request is safe.", true);
    default:
      return p("Something went wrong on our side. Try again later.", true);
  }
}
