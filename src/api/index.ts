export { initServer, type Server } from './app.js';
export { loadConfig, manifestKeyFromEnv, type ServerConfig } from './config.js';
export { createKey, parseScopes, hashKey, bootstrapAdminKey } from './keys.js';
