//! `steward-bench`: the Rust side of the benchmarks in `bench/run`.
//!
//! - `worker` serves the benchmark workflows on the SDK runtime exactly as
//!   `steward worker` builds it (current tokio runtime, default tuner: 100
//!   workflow and 100 activity slots, a 1,000-workflow cache) and connected
//!   as it connects (uncompressed gRPC), so its cost is the cost of
//!   steward's worker runtime.
//! - `drive` starts workflows and waits for them, and prints the wall time.
//! - `replay` replays an exported history with the SDK's replayer.
//! - `sweep-plain` does a sweep's per-repo work for every repo of a config
//!   as a plain program, without Temporal: the baseline of the sweep cost.
//!
//! The workflows have the same shapes and names as
//! `bench/python/bench_worker.py`, so either worker serves what the driver
//! starts, and either replayer replays the same history.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHistory, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use temporalio_sdk::{
    ActivityOptions, Runtime, SyncWorkflowContext, Worker, WorkerOptions, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};

/// The activity every benchmark workflow runs: returns its input.
pub struct BenchActivities;

#[activities]
impl BenchActivities {
    /// Returns `x`.
    #[activity(name = "noop")]
    pub async fn noop(_ctx: ActivityContext, x: u32) -> Result<u32, ActivityError> {
        Ok(x)
    }
}

fn noop_options() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(Duration::from_secs(30))
}

/// One activity.
#[workflow]
#[derive(Default)]
pub struct BenchOne;

#[workflow_methods]
impl BenchOne {
    /// Runs `noop` once.
    #[run(name = "BenchOne")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, x: u32) -> WorkflowResult<u32> {
        Ok(ctx
            .execute_activity(BenchActivities::noop, x, noop_options())
            .await?)
    }
}

/// `n` sequential activities (ten in the throughput benchmark; thousands
/// for the long history the replay benchmark replays).
#[workflow]
#[derive(Default)]
pub struct BenchSeq;

#[workflow_methods]
impl BenchSeq {
    /// Runs `noop` `n` times, one after the other.
    #[run(name = "BenchSeq")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, n: u32) -> WorkflowResult<u32> {
        let mut sum = 0;
        for i in 0..n {
            sum += ctx
                .execute_activity(BenchActivities::noop, i, noop_options())
                .await?;
        }
        Ok(sum)
    }
}

/// Waits for the `release` signal: a workflow that stays in the cache.
#[workflow]
#[derive(Default)]
pub struct BenchWait {
    released: bool,
}

#[workflow_methods]
impl BenchWait {
    /// Waits until released.
    #[run(name = "BenchWait")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, _x: u32) -> WorkflowResult<u32> {
        ctx.wait_condition(|s| s.released).await?;
        Ok(0)
    }

    /// Lets the workflow finish.
    #[signal(name = "release")]
    pub fn release(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _x: u32) {
        self.released = true;
    }

    /// Answers once the workflow is loaded, so the driver knows it is cached.
    #[query(name = "ready")]
    pub fn ready(&self, _ctx: &WorkflowContextView) -> bool {
        true
    }
}

#[derive(Parser)]
#[command(
    name = "steward-bench",
    about = "The Rust side of steward's benchmarks"
)]
struct Cli {
    /// The Temporal server, host:port.
    #[arg(long, default_value = "127.0.0.1:7233", global = true)]
    address: String,
    /// Task queue.
    #[arg(long, default_value = "bench", global = true)]
    queue: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    /// One activity.
    One,
    /// Ten sequential activities.
    Ten,
    /// Waits for a signal (started, then queried until cached).
    Wait,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the benchmark workflows until killed.
    Worker,
    /// Start `count` workflows of `shape`, at most `concurrency` in flight,
    /// wait for them, print {"count", "seconds"} as JSON.
    Drive {
        #[arg(long, value_enum)]
        shape: Shape,
        #[arg(long, default_value_t = 1000)]
        count: u32,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Prefix of the workflow ids (a run's ids must not repeat).
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
    /// Signal `release` to the `count` waiting workflows of `prefix` and
    /// wait for them.
    Release {
        #[arg(long, default_value_t = 1000)]
        count: u32,
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
    /// Run one BenchSeq of `n` activities and print its workflow id.
    Long {
        #[arg(long)]
        n: u32,
        #[arg(long, default_value = "bench-long")]
        id: String,
    },
    /// Run the sweep's per-repo work over every repo of `config` without
    /// Temporal, as many at once as the config's sweep concurrency; print
    /// {"count", "seconds"}.
    SweepPlain {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replay a history (JSON, as `temporal workflow show -o json` writes
    /// it) `times` times; print {"events", "seconds"} (median of the runs).
    Replay {
        file: PathBuf,
        #[arg(long, default_value_t = 3)]
        times: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Worker => worker(&cli.address, &cli.queue).await,
        Command::Drive {
            shape,
            count,
            concurrency,
            prefix,
        } => {
            let client = connect(&cli.address).await?;
            let started = Instant::now();
            drive(&client, &cli.queue, shape, count, concurrency, &prefix).await?;
            print_json(count, started.elapsed());
            Ok(())
        }
        Command::Release { count, prefix } => {
            let client = connect(&cli.address).await?;
            let started = Instant::now();
            futures::stream::iter(0..count)
                .map(|i| {
                    let handle = client.get_workflow_handle::<BenchWait>(format!("{prefix}-{i}"));
                    async move {
                        handle
                            .signal(BenchWait::release, 1, Default::default())
                            .await
                            .context("signalling")?;
                        handle
                            .get_result(WorkflowGetResultOptions::default())
                            .await
                            .context("waiting")?;
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(100)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<_>>>()?;
            print_json(count, started.elapsed());
            Ok(())
        }
        Command::Long { n, id } => {
            let client = connect(&cli.address).await?;
            let handle = client
                .start_workflow(
                    BenchSeq::run,
                    n,
                    WorkflowStartOptions::new(cli.queue.clone(), id.clone()).build(),
                )
                .await?;
            handle
                .get_result(WorkflowGetResultOptions::default())
                .await?;
            println!("{id}");
            Ok(())
        }
        Command::Replay { file, times } => replay(&file, times).await,
        Command::SweepPlain { config } => sweep_plain(&config).await,
    }
}

fn print_json(count: u32, elapsed: Duration) {
    println!(
        "{}",
        serde_json::json!({ "count": count, "seconds": elapsed.as_secs_f64() })
    );
}

/// A connection as `steward worker` makes it by default (`[worker]
/// grpc_compression`).
async fn connect(address: &str) -> anyhow::Result<Client> {
    steward_worker::connect::to_address(address, "default", Default::default()).await
}

async fn worker(address: &str, queue: &str) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default()).context("the SDK runtime")?;
    let client = connect(address).await?;
    let options = WorkerOptions::new(queue)
        .register_workflow::<BenchOne>()?
        .register_workflow::<BenchSeq>()?
        .register_workflow::<BenchWait>()?
        .register_activities(BenchActivities)
        .build();
    let mut worker = Worker::new(&runtime, client, options).context("creating the worker")?;
    eprintln!("bench worker polling {queue}");
    worker.run().await.context("worker stopped")
}

async fn drive(
    client: &Client,
    queue: &str,
    shape: Shape,
    count: u32,
    concurrency: usize,
    prefix: &str,
) -> anyhow::Result<()> {
    let results = futures::stream::iter(0..count)
        .map(|i| {
            let options =
                WorkflowStartOptions::new(queue.to_owned(), format!("{prefix}-{i}")).build();
            async move {
                match shape {
                    Shape::One => {
                        client
                            .start_workflow(BenchOne::run, i, options)
                            .await?
                            .get_result(WorkflowGetResultOptions::default())
                            .await?;
                    }
                    Shape::Ten => {
                        client
                            .start_workflow(BenchSeq::run, 10, options)
                            .await?
                            .get_result(WorkflowGetResultOptions::default())
                            .await?;
                    }
                    Shape::Wait => {
                        let handle = client.start_workflow(BenchWait::run, i, options).await?;
                        // A query is answered by the worker, so it has
                        // loaded the workflow into its cache.
                        handle
                            .query(BenchWait::ready, (), Default::default())
                            .await?;
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(())
}

async fn replay(file: &PathBuf, times: usize) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let events = serde_json::from_slice::<serde_json::Value>(&bytes)?["events"]
        .as_array()
        .map_or(0, Vec::len);
    let mut seconds = Vec::new();
    for _ in 0..times.max(1) {
        let history = WorkflowHistory::from_json(&bytes).context("reading the history")?;
        let replayer = WorkflowReplayer::new(
            WorkflowReplayerOptions::new()
                .register_workflow::<BenchSeq>()?
                .build(),
        )?;
        let started = Instant::now();
        replayer
            .replay_workflow(history)
            .await
            .context("replaying")?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({ "events": events, "seconds": seconds[seconds.len() / 2] })
    );
    Ok(())
}

async fn sweep_plain(config: &std::path::Path) -> anyhow::Result<()> {
    use steward_activities::Store;
    use steward_activities::sweep::process_repo;
    use steward_proto::v1::RepoSweepRequest;

    let loaded = steward_worker::config::load(config)?;
    let store = Store::connect(&loaded.database_url()).await?;
    let settings = loaded.config.sweep.clone();
    let started = Instant::now();
    let outcomes = futures::stream::iter(&loaded.config.repos)
        .map(|r| {
            let req = RepoSweepRequest {
                repo: Some(r.target()),
                ..Default::default()
            };
            let (store, settings) = (&store, &settings);
            async move { process_repo(store, settings, &req, 1).await }
        })
        .buffer_unordered(settings.concurrency.max(1) as usize)
        .collect::<Vec<_>>()
        .await;
    let count = outcomes.len() as u32;
    for outcome in outcomes {
        outcome.context("a repo failed")?;
    }
    print_json(count, started.elapsed());
    Ok(())
}
