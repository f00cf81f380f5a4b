// The demo background worker: one heartbeat line a second, clean exit on SIGTERM.
const instance = process.env.LANES_INSTANCE || 'local';
let n = 0;

const timer = setInterval(() => {
  n += 1;
  console.log(`heartbeat ${n} from ${instance}`);
}, 1000);

process.once('SIGTERM', () => {
  clearInterval(timer);
  process.exit(0);
});
