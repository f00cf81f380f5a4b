/**
 * @lanes/gateway — the edge data plane: host/path routing to environment services with
 * round robin and local ejection, a streaming reverse proxy, the control-plane watch
 * client, and the persisted last good routing table. The process entry is `main.ts`.
 */
export { TrafficCounter } from './proxy.js';
export { MetricsReporter } from './metrics.js';
export { Gateway, type GatewayOptions, type RequestGuard, type Rejection } from './proxy.js';
export {
  RoutingState,
  validateTable,
  normalizeHost,
  prefixMatches,
  endpointKey,
  DEFAULT_EJECT_MS,
  type RouteMatch,
  type Upstream,
  type RoutingStateOptions,
} from './routing.js';
export { TableWatcher, decideAndApply, tokenFromFile, type TableWatcherOptions, type TableSink, type TableDecision } from './watch.js';
export { parseConfig, parseTrustedProxies, resolveLimits, DEFAULT_LIMITS, type GatewayConfig, type GatewayLimits } from './config.js';
export { writeFileAtomic } from '@lanes/runtime';
export { TABLE_FILE, READY_FILE, ACCESS_LOG_FILE } from './persist.js';
export { createLogger, serializers } from './logging.js';
export { TcpRouter, checkStatus, DEFAULT_TCP_LIMITS, type TcpLimits, type TcpRouterOptions } from './tcp.js';
