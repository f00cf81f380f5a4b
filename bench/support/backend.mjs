#!/usr/bin/env node
// The one backend every peer of bench/gateway.mjs proxies to: a bare node:http server that
// answers every path with the same 13-byte body ("hello, lanes\n") and /healthz with "ok",
// keeping connections alive for longer than any proxy's idle timeout so that no peer pays
// for reconnects the others do not. `PORT` (required) and `HOST` (default 127.0.0.1).
import http from 'node:http';

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
if (!Number.isInteger(port) || port < 1 || port > 65_535) {
  process.stderr.write(`backend: PORT ${JSON.stringify(process.env.PORT)} is not a port\n`);
  process.exit(2);
}

const BODY = Buffer.from('hello, lanes\n');
const OK = Buffer.from('ok\n');
const HEADERS = { 'content-type': 'text/plain', 'content-length': BODY.length };
const OK_HEADERS = { 'content-type': 'text/plain', 'content-length': OK.length };

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') res.writeHead(200, OK_HEADERS).end(OK);
  else res.writeHead(200, HEADERS).end(BODY);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
server.listen(port, host, () => process.stdout.write(`backend listening on ${host}:${port}\n`));
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
});
