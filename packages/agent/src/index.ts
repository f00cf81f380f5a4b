/** The zone supervisor: runs service instances as supervised OS processes. */
export { DEFAULT_NETWORK_PORT, Supervisor, type SupervisorOptions, type InstanceLogFiles } from './supervisor.js';
export { DEFAULT_RESTART_POLICY, decideRestart, type RestartPolicy, type RestartHistory, type RestartDecision } from './policy.js';
export { ControlPlaneClient, createPackageResolver, parseWatchMessage, type ControlPlaneClientOptions, type PackageResolverOptions } from './client.js';
export { startAgentServer, type AgentServer, type AgentServerOptions } from './server.js';
export { parseConfig, ConfigError, type AgentConfig } from './config.js';
export { parseDesiredInstance, parseDesiredList, parseInstanceNetwork, parseNetworkList, checkInstanceId } from './validate.js';
