/**
 * Builds the control plane: the store, tokens, the Platform core and the Fastify server.
 * `startControlPlane` is what main.ts runs and what tests call in-process.
 */
import { mkdir, writeFile, rename } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { openStore, type Store } from '@lanes/store';
import { registerApi } from './api.js';
import { checkJsonDepth, serializeRequest } from './api-guard.js';
import type { Config } from './config.js';
import { Platform } from './platform.js';
import { Secret, hashToken, newToken, readSecretFile, writeSecretFile } from './secret.js';

export interface ControlPlane {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly platform: Platform;
  readonly store: Store;
  close(): Promise<void>;
}

/** The admin and node tokens: created at the first start, then read back. */
async function ensureToken(store: Store, file: string, role: 'admin' | 'node'): Promise<Secret> {
  const existing = await readSecretFile(file);
  if (existing && (await store.findTokenByHash(hashToken(existing.reveal())))?.role === role) return existing;
  const token = newToken(role === 'admin' ? 'lanes_admin' : 'lanes_node');
  await store.addToken({ name: `${role}-${new Date().toISOString()}`, role, hash: hashToken(token.reveal()) });
  await writeSecretFile(file, token);
  return token;
}

export async function startControlPlane(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<ControlPlane> {
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const dataDir = path.join(config.home, 'data', 'admin-db');
  const store = await openStore(config.databaseUrl ? { url: config.databaseUrl, logger: log } : { dataDir, logger: log });
  const admin = await ensureToken(store, path.join(config.home, 'admin.token'), 'admin');
  const node = await ensureToken(store, path.join(config.home, 'node.token'), 'node');

  const platform = new Platform(store, config, log.child({ component: 'reconciler' }));
  // Request log lines are allow-lists: method, path, a query with credential-like values
  // redacted, the client address; never headers, so never an Authorization header.
  const apiLog: FastifyBaseLogger = log.child({ component: 'api' }, { serializers: { req: serializeRequest } });
  const app = Fastify({
    loggerInstance: apiLog,
    bodyLimit: 1024 * 1024,
    // Limits for every connection; the watch and log streams lift the idle timeout on
    // their own sockets and keep them busy with pings.
    connectionTimeout: 120_000,
    keepAliveTimeout: 5000,
    requestTimeout: 120_000,
    http: { headersTimeout: 15_000, maxHeaderSize: 16 * 1024 },
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
  });
  // JSON bodies: nesting is limited before JSON.parse (a deep body would overflow the stack:
  // a 500), then Fastify's own parser runs (prototype poisoning refused).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    try {
      checkJsonDepth(text);
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    parseJson(req, text, done);
  });
  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/octet-stream'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.server.maxConnections = 2048;
  registerApi(app, platform, { admin, node });
  await platform.start();
  await app.listen({ port: config.apiPort, host: config.host });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.apiPort;
  const url = `http://${config.host}:${port}`;
  const status = path.join(config.home, 'controlplane.json');
  await writeFile(`${status}.tmp`, JSON.stringify({ pid: process.pid, url }));
  await rename(`${status}.tmp`, status);
  log.info({ url, database: config.databaseUrl ? 'postgresql' : 'pglite', zones: config.zoneList }, 'control plane listening');
  return {
    url,
    app,
    platform,
    store,
    async close() {
      await app.close();
      await platform.stop();
      await store.close();
    },
  };
}
