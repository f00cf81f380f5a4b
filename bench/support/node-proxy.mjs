#!/usr/bin/env node
// The "node http-proxy" peer of bench/gateway.mjs: the npm http-proxy package in one
// process, with a keep-alive agent to the backend and X-Forwarded-* headers, over HTTP and
// (with HTTPS_PORT, CERT and KEY) HTTPS. `TARGET` is the backend's http://host:port.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import httpProxy from 'http-proxy';

const { TARGET, HTTP_PORT, HTTPS_PORT, CERT, KEY } = process.env;
const agent = new http.Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 });
const proxy = httpProxy.createProxyServer({ target: TARGET, agent, xfwd: true });
proxy.on('error', (err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`bad gateway (${err.code ?? err.message})\n`);
  else res.destroy?.();
});
const handle = (req, res) => proxy.web(req, res);
const servers = [http.createServer({ keepAliveTimeout: 15_000 }, handle).listen(Number(HTTP_PORT), '127.0.0.1')];
if (HTTPS_PORT) {
  servers.push(https.createServer({ cert: readFileSync(CERT), key: readFileSync(KEY), minVersion: 'TLSv1.2', keepAliveTimeout: 15_000 }, handle).listen(Number(HTTPS_PORT), '127.0.0.1'));
}
process.once('SIGTERM', () => {
  for (const s of servers) {
    s.close();
    s.closeIdleConnections();
  }
  setTimeout(() => process.exit(0), 1_000).unref();
});
