//! One harness for every workflow test: a test's folder, its config, a
//! real dev server and a client, optionally the real `steward` worker, and
//! the helpers each test file used to write for itself (run the CLI, query
//! a workflow, wait for a result).
//!
//! A test file that needs more (a fixture database, an app) keeps a small
//! `Env` that holds a `Harness` and derefs to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;
use temporalio_client::{Client, WorkflowGetResultOptions};
use temporalio_common::{HasWorkflowDefinition, QueryDefinition};

use crate::{Server, Steward, run_steward, wait_for};

/// Makes a test's `Env` (a struct with the field `h: Harness`) deref to
/// its harness, so `env.cli(..)`, `env.client`, `env.config` read as on the
/// harness itself.
#[macro_export]
macro_rules! derefs_to_harness {
    ($env:ty) => {
        impl std::ops::Deref for $env {
            type Target = $crate::Harness;
            fn deref(&self) -> &$crate::Harness {
                &self.h
            }
        }

        impl std::ops::DerefMut for $env {
            fn deref_mut(&mut self) -> &mut $crate::Harness {
                &mut self.h
            }
        }
    };
}

/// A test's folder, config, server, client and (once started) worker.
pub struct Harness {
    /// The workers run first, so they stop before the server and the
    /// folder go.
    pub worker: Option<Steward>,
    /// The dev server.
    pub server: Server,
    /// A client in the server's default namespace.
    pub client: Client,
    /// The config every `steward` command of the test reads.
    pub config: PathBuf,
    /// The test's folder.
    pub root: PathBuf,
    _dir: TempDir,
}

impl Harness {
    /// Starts a dev server with its database in `dir`, for `config`.
    pub async fn start(dir: TempDir, config: PathBuf) -> Self {
        let root = dir.path().to_path_buf();
        let server = Server::start(&root).await;
        let client = server.client().await;
        Self {
            worker: None,
            server,
            client,
            config,
            root,
            _dir: dir,
        }
    }

    /// The same, with a `steward worker` running on the config.
    pub async fn with_worker(dir: TempDir, config: PathBuf) -> Self {
        let mut h = Self::start(dir, config).await;
        h.start_worker();
        h
    }

    /// Starts a `steward worker` (replacing one that runs).
    pub fn start_worker(&mut self) {
        self.worker = Some(Steward::worker(&self.config, &self.server.address));
    }

    /// The worker; panics when none was started.
    pub fn worker(&mut self) -> &mut Steward {
        self.worker.as_mut().expect("a worker was started")
    }

    /// What the worker wrote so far (empty before one was started).
    pub fn worker_log(&self) -> String {
        self.worker.as_ref().map(Steward::log).unwrap_or_default()
    }

    /// Runs `steward <args>` on the test's config and server: (exit code,
    /// stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        run_steward(&self.config, &self.server.address, args)
    }

    /// Runs `steward <args>`, which must exit 0; its stdout as JSON (null
    /// when it printed none).
    pub fn ok(&self, args: &[&str]) -> serde_json::Value {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "steward {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    }

    /// Starts `workflow` with `input` as `id` straight through Temporal, as
    /// anyone who reaches the frontend can (no CLI, no API, no checks of
    /// theirs); its run id.
    pub async fn start_directly<W>(&self, workflow: W, input: W::Input, id: &str) -> String
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let loaded = steward_worker::config::load(&self.config).expect("the test's config loads");
        let options =
            temporalio_client::WorkflowStartOptions::new(loaded.config.task_queue.clone(), id)
                .build();
        let handle = self
            .client
            .start_workflow(workflow, input, options)
            .await
            .unwrap_or_else(|e| panic!("starting {id}: {e}"));
        handle.run_id().unwrap_or_default().to_string()
    }

    /// Asks workflow `id` the query `q`.
    pub async fn query<W, Q>(&self, id: &str, q: Q) -> anyhow::Result<Q::Output>
    where
        W: HasWorkflowDefinition,
        Q: QueryDefinition<Workflow = W::Run, Input = ()>,
    {
        self.client
            .get_workflow_handle::<W>(id)
            .query(q, (), Default::default())
            .await
            .with_context(|| format!("querying {id}"))
    }

    /// Asks workflow `id` the query `q()` until `done` holds of the
    /// answer, for up to `within`.
    pub async fn wait_query<W, Q>(
        &self,
        id: &str,
        q: impl Fn() -> Q,
        what: &str,
        within: Duration,
        done: impl Fn(&Q::Output) -> bool,
    ) -> Q::Output
    where
        W: HasWorkflowDefinition,
        Q: QueryDefinition<Workflow = W::Run, Input = ()>,
    {
        wait_for(what, within, || async {
            let answer = self.query::<W, Q>(id, q()).await.ok()?;
            done(&answer).then_some(answer)
        })
        .await
        .unwrap()
    }

    /// The result of workflow `id` (its last run), within `within`.
    pub async fn result<W: HasWorkflowDefinition>(&self, id: &str, within: Duration) -> W::Output {
        let handle = self.client.get_workflow_handle::<W>(id);
        tokio::time::timeout(
            within,
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{id} ended within {within:?}"))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    /// `steward alerts list`, newest first.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.ok(&["alerts", "list", "--limit", "1000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A temp dir for one test, removed when it is dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("steward-test-")
        .tempdir()
        .unwrap()
}

/// Reads a file as a string, with the path in the panic message.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .with_context(|| path.display().to_string())
        .unwrap()
}
