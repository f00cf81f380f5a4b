/** @lanes/cli: the `lanes` command. Public surface: main (bin/lanes.js), run (in-process), and context.json reading. */
export { main, run, version } from './main.js';
export { configFromEnv, readContext, homePaths, type CliConfig, type LanesContext } from './home.js';
export { processIo, memoryIo, type Io } from './io.js';
