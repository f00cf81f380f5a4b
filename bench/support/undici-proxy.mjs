#!/usr/bin/env node
// The floor of a Node proxy for bench/gateway.mjs: node:http in front of one undici
// keep-alive Pool, no routing, no checks, no log — what any Node gateway costs at least.
// WORKERS cluster workers share the listeners (0: this process serves). `TARGET` is the
// backend's http://host:port; HTTP_PORT, and HTTPS_PORT with CERT and KEY.
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Pool } from 'undici';

const { TARGET, HTTP_PORT, HTTPS_PORT, CERT, KEY } = process.env;
const workers = Number(process.env.WORKERS ?? 0);

if (cluster.isPrimary && workers > 0) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.once('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 1_000).unref();
  });
} else {
  const pool = new Pool(TARGET, { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 });
  const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-connection']);
  const factory = ({ statusCode, headers, opaque }) => {
    const out = [];
    for (const name in headers) if (!HOP.has(name)) out.push(name, headers[name]);
    opaque.writeHead(statusCode, out);
    return opaque;
  };
  const handle = (req, res) => {
    const raw = req.rawHeaders;
    const headers = [];
    for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
    headers.push('x-forwarded-for', req.socket.remoteAddress ?? '');
    pool.stream({ path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req, opaque: res }, factory, (err) => {
      if (err && !res.headersSent) res.writeHead(502).end('bad gateway\n');
      else if (err) res.destroy();
    });
  };
  const servers = [http.createServer({ keepAliveTimeout: 15_000 }, handle).listen(Number(HTTP_PORT), '127.0.0.1')];
  if (HTTPS_PORT) servers.push(https.createServer({ cert: readFileSync(CERT), key: readFileSync(KEY), minVersion: 'TLSv1.2', keepAliveTimeout: 15_000 }, handle).listen(Number(HTTPS_PORT), '127.0.0.1'));
  process.once('SIGTERM', () => {
    for (const s of servers) s.close();
    setTimeout(() => process.exit(0), 500).unref();
  });
}
