//! The workers polling steward's task queues, as the server sees them: the
//! shared queue, and each host's own queue (`<task_queue>@<host>`) for the
//! hosts the config pins steps to (`runs_on`) or this worker says it is.

use steward_proto::names;
use temporalio_client::NamespacedClient as _;
use temporalio_client::tonic::Request;
use temporalio_common::protos::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

use steward_activities::time as clock;

use super::{Error, Ops, Result};

/// One worker seen polling a queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Poller {
    /// The worker's identity (`<pid>@<machine> host <host>`).
    pub identity: String,
    /// Its build id, when it reports one.
    pub build_id: String,
    /// When it last polled (RFC 3339).
    pub last_poll: String,
    /// The same, in ms since the epoch (0: not said).
    #[serde(skip)]
    pub last_poll_ms: i64,
}

/// A host and the workers polling its queue.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HostWorkers {
    /// The host, as `runs_on` and `[worker] host` name it.
    pub host: String,
    /// Its task queue.
    pub task_queue: String,
    /// What the config pins to it (`apps[0].runs_on`).
    pub pinned: Vec<String>,
    /// The workers polling its queue; none means its pinned steps wait.
    pub workers: Vec<Poller>,
}

/// Every queue steward's steps go to, with its workers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Workers {
    /// The shared task queue.
    pub task_queue: String,
    /// The workers polling it (for workflows, activities or both).
    pub workers: Vec<Poller>,
    /// Each host's queue.
    pub hosts: Vec<HostWorkers>,
}

impl Ops {
    /// The workers polling the shared queue and each host's.
    pub async fn workers(&self) -> Result<Workers> {
        let config = &self.loaded().config;
        let shared = config.task_queue.clone();
        let mut workers = self.pollers(&shared, TaskQueueType::Workflow).await?;
        for p in self.pollers(&shared, TaskQueueType::Activity).await? {
            if !workers.iter().any(|w| w.identity == p.identity) {
                workers.push(p);
            }
        }
        let mut pinned = config.hosts();
        if let Some(own) = &config.worker.host {
            pinned.entry(own.clone()).or_default();
        }
        let mut hosts = Vec::new();
        for (host, keys) in pinned {
            let queue = names::host_queue(&shared, &host);
            hosts.push(HostWorkers {
                workers: self.pollers(&queue, TaskQueueType::Activity).await?,
                host,
                task_queue: queue,
                pinned: keys,
            });
        }
        Ok(Workers {
            task_queue: shared,
            workers,
            hosts,
        })
    }

    /// The workers the server saw polling `queue` for `kind` tasks lately.
    pub(super) async fn pollers(&self, queue: &str, kind: TaskQueueType) -> Result<Vec<Poller>> {
        let client = self.client().await?;
        let mut service = client.connection().workflow_service();
        let answer = service
            .describe_task_queue(Request::new(DescribeTaskQueueRequest {
                namespace: client.namespace(),
                task_queue: Some(TaskQueue {
                    name: queue.to_string(),
                    kind: TaskQueueKind::Normal as i32,
                    normal_name: String::new(),
                }),
                task_queue_type: kind as i32,
                ..Default::default()
            }))
            .await
            .map_err(|e| Error::upstream(format!("describing task queue `{queue}`"), e))?
            .into_inner();
        let mut pollers: Vec<Poller> = answer
            .pollers
            .into_iter()
            .map(|p| {
                let ms = p
                    .last_access_time
                    .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
                Poller {
                    build_id: p.deployment_options.map(|d| d.build_id).unwrap_or_default(),
                    last_poll: ms.map(clock::secs_text).unwrap_or_default(),
                    last_poll_ms: ms.unwrap_or_default(),
                    identity: p.identity,
                }
            })
            .collect();
        pollers.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(pollers)
    }
}
