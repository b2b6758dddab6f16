export { initServer, type Server } from './app.js';
export { CONFIG_VARIABLES, SERVER_ROLES, loadConfig, storageConfig, type ServerConfig, type ServerRole } from './config.js';
export { createKey, parseScopes, hashKey, bootstrapAdminKey } from './keys.js';
export { streamRoutes, startServerMqtt, type MqttServeOptions, type StreamRouteOptions } from './stream.js';
