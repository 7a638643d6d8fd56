// The TypeScript side of steward's benchmarks: serves the benchmark
// workflows with the official TypeScript SDK (`@temporalio/worker`).
//
//     node worker.js --address A --queue Q
//
// Set to the Rust and Python SDKs' defaults: 100 workflow task slots, 100
// activity slots, a 1,000-workflow cache. The workflows are bundled once
// at start (the SDK's own webpack step), before the worker says it polls.
const { NativeConnection, Worker } = require('@temporalio/worker');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main() {
  const address = arg('--address', '127.0.0.1:7233');
  const taskQueue = arg('--queue', 'bench');
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: { noop: async (x) => x },
    maxConcurrentWorkflowTaskExecutions: 100,
    maxConcurrentActivityTaskExecutions: 100,
    maxCachedWorkflows: 1000,
  });
  console.error(`typescript bench worker polling ${taskQueue}`);
  await worker.run();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
