// Run-time configuration, read from `config.json` beside the bundle: the same build serves
// every deployment (the template's stack writes its API URL there, `make dev` the local one).

export interface ConsoleConfig {
  /** The API's base URL (the HTTP API's `ApiUrl`, or the local gateway). */
  apiUrl: string;
  /** The signup page a share link points to; the code is added as `?invite=CODE`. */
  signupUrl: string;
  /** Where "sign in again" sends the user (the host application); empty: no link. */
  signInUrl: string;
  /** The host application's origin allowed to hand over a token by `postMessage`. */
  hostOrigin: string;
  /** The claim and value that mark an administrator (as the functions' AUTH_ADMIN_*). */
  adminClaim: string;
  adminValue: string;
}

const defaults: ConsoleConfig = {
  apiUrl: "",
  signupUrl: "",
  signInUrl: "",
  hostOrigin: "",
  adminClaim: "scope",
  adminValue: "market:admin",
};

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch("./config.json", { cache: "no-store" });
  if (!response.ok) throw new Error("config.json is missing");
  const raw = (await response.json()) as Partial<ConsoleConfig>;
  const config = { ...defaults, ...raw };
  if (!config.apiUrl) throw new Error("config.json has no apiUrl");
  config.apiUrl = config.apiUrl.replace(/\/+$/, "");
  return config;
}
