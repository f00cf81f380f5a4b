export { startControlPlane, type ControlPlane } from './server.js';
export { parseConfig, type Config } from './config.js';
export { openApiDocument } from './openapi.js';
