export { createRegistryHandler } from "./handler.js";
export type { RegistryHandler, RegistryHandlerOptions } from "./handler.js";
export { startRegistryServer } from "./serve.js";
export type { ServeOptions, RunningRegistry } from "./serve.js";
export { RegistryError } from "./errors.js";
export { Authenticator, loadHtpasswd } from "./auth.js";
export type { AuthConfig, Access } from "./auth.js";
