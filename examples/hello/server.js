// The demo web service: says which instance and zone answered, serves a health check,
// and drains in-flight requests on SIGTERM so rolling deploys lose nothing.
import http from 'node:http';

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || 8080);
const MAX_SLOW_MS = 60_000;

const info = {
  instance: process.env.LANES_INSTANCE || 'local',
  zone: process.env.LANES_ZONE || 'none',
  service: process.env.LANES_SERVICE || 'web',
  tenant: process.env.LANES_TENANT || '',
  environment: process.env.LANES_ENV || '',
  release: process.env.LANES_RELEASE || '',
};

let draining = false;

function send(res, contentType, body) {
  const headers = { 'content-type': contentType, 'content-length': Buffer.byteLength(body) };
  // While draining, close each connection after its answer so keep-alive cannot hold the exit.
  if (draining) headers.connection = 'close';
  res.writeHead(200, headers);
  res.end(body);
}

function reply(res) {
  send(res, 'application/json', JSON.stringify({ message: `hello from ${info.instance} in zone ${info.zone}`, ...info, pid: process.pid }));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url || '/', 'http://localhost');
  if (url.pathname === '/healthz') {
    send(res, 'text/plain', 'ok');
    return;
  }
  if (url.pathname === '/slow') {
    const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), MAX_SLOW_MS);
    setTimeout(() => reply(res), ms);
    return;
  }
  reply(res);
});
server.headersTimeout = 10_000;
server.requestTimeout = MAX_SLOW_MS + 10_000;
server.keepAliveTimeout = 5_000;

server.listen(port, host, () => {
  console.log(`listening on ${host}:${port}`);
});

process.once('SIGTERM', () => {
  // Stop accepting, drop idle keep-alive sockets, let in-flight requests finish, then exit 0.
  draining = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
