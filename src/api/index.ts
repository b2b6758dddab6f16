export { initServer, type Server } from './app.js';
export { loadConfig, type ServerConfig } from './config.js';
export { createKey, parseScopes, hashKey, bootstrapAdminKey } from './keys.js';
export { streamRoutes, startServerMqtt, type MqttServeOptions, type StreamRouteOptions } from './stream.js';
