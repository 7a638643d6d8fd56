// The TypeScript side of steward's benchmarks: the same workflows as
// bench/src/main.rs and bench/python/bench_worker.py, under the same names.
const { proxyActivities, defineSignal, defineQuery, setHandler, condition } = require('@temporalio/workflow');

const { noop } = proxyActivities({ startToCloseTimeout: '30 seconds' });

async function BenchOne(x) {
  return await noop(x);
}

async function BenchSeq(n) {
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += await noop(i);
  }
  return total;
}

const release = defineSignal('release');
const ready = defineQuery('ready');

async function BenchWait(_x) {
  let released = false;
  setHandler(release, () => {
    released = true;
  });
  setHandler(ready, () => true);
  await condition(() => released);
  return 0;
}

module.exports = { BenchOne, BenchSeq, BenchWait };
