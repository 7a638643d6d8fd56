//! A workflow's history as an audit timeline: activities with attempts,
//! timings and outcomes; signals and updates with who sent them and why;
//! timers; how the run ended. Built from the history's standard JSON form,
//! so it reads the same events the Temporal UI shows.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::NamespacedClient as _;
use temporalio_client::{
    Client, UntypedWorkflowHandle, WorkflowExecutionInfo, WorkflowFetchHistoryOptions,
    WorkflowHistory,
};
use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_common::protos::temporal::api::failure::v1::Failure;
use temporalio_common::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

/// One line of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Entry {
    /// Event id of the event that closes this entry.
    pub event_id: i64,
    /// RFC 3339 time of that event.
    pub time: String,
    /// `workflow_started`, `activity`, `signal`, `update`, `timer`,
    /// `workflow_task_failed`, `workflow_closed`.
    pub kind: String,
    /// Activity type, signal or update name, or how the run closed.
    pub name: String,
    /// Attempt that closed an activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// Milliseconds from scheduling to closing, for activities and timers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// `completed`, `failed`, `timed_out`, `canceled`, `fired`, `received`,
    /// `accepted`, `rejected`, `terminated`, `continued_as_new`...
    pub outcome: String,
    /// Decoded input, result or failure; who sent a signal or update.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// For people: who did an operator action, why, and what it changed
    /// (`ana (night shift): set accepted: batch_size 500 → 5000`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// `operator (reason): message` of an operator action whose input carries
/// `operator` and `reason` and whose reply carries `message`.
fn operator_summary(input: &Value, reply: &Value) -> String {
    let who = input["operator"].as_str().unwrap_or_default();
    if who.is_empty() {
        return String::new();
    }
    let why = input["reason"].as_str().unwrap_or_default();
    let what = reply["message"].as_str().unwrap_or_default();
    let mut s = who.to_string();
    if !why.is_empty() {
        s.push_str(&format!(" ({why})"));
    }
    if !what.is_empty() {
        s.push_str(&format!(": {what}"));
    }
    s
}

/// A handle on `workflow_id`: its latest run, or `run_id`.
fn handle(
    client: &Client,
    workflow_id: &str,
    run_id: Option<&str>,
) -> UntypedWorkflowHandle<Client> {
    WorkflowExecutionInfo::builder()
        .namespace(client.namespace())
        .workflow_id(workflow_id)
        .maybe_run_id(run_id.map(str::to_owned))
        .build()
        .bind_untyped(client.clone())
}

/// The history of one run, for export and replay.
pub fn history(client: &Client, workflow_id: &str, run_id: Option<&str>) -> WorkflowHistory {
    handle(client, workflow_id, run_id).fetch_history(WorkflowFetchHistoryOptions::default())
}

/// Fetches every event of the latest run of `workflow_id`, or of `run_id`.
pub async fn fetch_events(
    client: &Client,
    workflow_id: &str,
    run_id: Option<&str>,
) -> anyhow::Result<Vec<HistoryEvent>> {
    history(client, workflow_id, run_id)
        .into_events()
        .await
        .with_context(|| format!("fetching the history of {workflow_id}"))
}

/// The events of a history exported as JSON (the replayer's format, and
/// what the audit archive keeps).
pub fn events_of(json: &[u8]) -> anyhow::Result<Vec<HistoryEvent>> {
    Ok(
        serde_json::from_slice::<temporalio_common::protos::temporal::api::history::v1::History>(
            json,
        )
        .context("reading the exported history")?
        .events,
    )
}

/// Decodes payloads into JSON values: JSON payloads as their value,
/// anything else as a note of its encoding and size.
pub fn decode_payloads(p: Option<&Payloads>) -> Value {
    let decoded: Vec<Value> = p
        .map(|p| p.payloads.iter().map(decode_payload).collect())
        .unwrap_or_default();
    match decoded.len() {
        0 => Value::Null,
        1 => decoded.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(decoded),
    }
}

fn decode_payload(p: &Payload) -> Value {
    let encoding = p
        .metadata
        .get("encoding")
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    match encoding.as_str() {
        "json/plain" => serde_json::from_slice(&p.data).unwrap_or(Value::Null),
        "binary/null" => Value::Null,
        other => Value::String(format!("<{} bytes, {other}>", p.data.len())),
    }
}

fn failure(f: Option<&Failure>) -> Value {
    f.map(|f| Value::String(f.message.clone()))
        .unwrap_or(Value::Null)
}

fn millis(e: &HistoryEvent) -> Option<i64> {
    e.event_time
        .as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn rfc3339(e: &HistoryEvent) -> String {
    e.event_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Builds the timeline from history events.
pub fn timeline(events: &[HistoryEvent]) -> Vec<Entry> {
    struct Scheduled {
        name: String,
        at: Option<i64>,
        input: Value,
        attempt: Option<i64>,
        /// The identity of the worker that ran the last attempt.
        worker: String,
    }
    let mut scheduled: BTreeMap<i64, Scheduled> = BTreeMap::new();
    let mut timers: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    // Accepted updates by event id, until their completion closes them.
    let mut accepted: BTreeMap<i64, Entry> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        let entry = |kind: &str, name: String, outcome: &str, detail: Value| Entry {
            event_id: e.event_id,
            time: rfc3339(e),
            kind: kind.into(),
            name,
            attempt: None,
            duration_ms: None,
            outcome: outcome.into(),
            detail,
            summary: String::new(),
        };
        let mut close_activity = |sid: i64, outcome: &str, detail: Value| {
            let s = scheduled.remove(&sid);
            let mut en = entry(
                "activity",
                s.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                outcome,
                detail,
            );
            if let (Some(s), Value::Object(map)) = (&s, &mut en.detail) {
                map.insert("input".into(), s.input.clone());
                if !s.worker.is_empty() {
                    map.insert("worker".into(), s.worker.clone().into());
                }
            }
            en.attempt = s.as_ref().and_then(|s| s.attempt);
            en.duration_ms = s.and_then(|s| Some(millis(e)? - s.at?));
            en
        };
        let Some(attributes) = &e.attributes else {
            continue;
        };
        match attributes {
            Attributes::WorkflowExecutionStartedEventAttributes(a) => {
                let name = a
                    .workflow_type
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                out.push(entry(
                    "workflow_started",
                    name,
                    "started",
                    json!({ "input": decode_payloads(a.input.as_ref()), "identity": a.identity }),
                ));
            }
            Attributes::ActivityTaskScheduledEventAttributes(a) => {
                scheduled.insert(
                    e.event_id,
                    Scheduled {
                        name: a
                            .activity_type
                            .as_ref()
                            .map(|t| t.name.clone())
                            .unwrap_or_default(),
                        at: millis(e),
                        input: decode_payloads(a.input.as_ref()),
                        attempt: None,
                        worker: String::new(),
                    },
                );
            }
            Attributes::ActivityTaskStartedEventAttributes(a) => {
                if let Some(s) = scheduled.get_mut(&a.scheduled_event_id) {
                    s.attempt = Some(i64::from(a.attempt));
                    s.worker = a.identity.clone();
                }
            }
            Attributes::ActivityTaskCompletedEventAttributes(a) => {
                let en = close_activity(
                    a.scheduled_event_id,
                    "completed",
                    json!({ "result": decode_payloads(a.result.as_ref()) }),
                );
                out.push(en);
            }
            Attributes::ActivityTaskFailedEventAttributes(a) => {
                let en = close_activity(
                    a.scheduled_event_id,
                    "failed",
                    json!({ "failure": failure(a.failure.as_ref()) }),
                );
                out.push(en);
            }
            Attributes::ActivityTaskTimedOutEventAttributes(a) => {
                let en = close_activity(
                    a.scheduled_event_id,
                    "timed_out",
                    json!({ "failure": failure(a.failure.as_ref()) }),
                );
                out.push(en);
            }
            Attributes::ActivityTaskCanceledEventAttributes(a) => {
                let en = close_activity(a.scheduled_event_id, "canceled", json!({}));
                out.push(en);
            }
            Attributes::WorkflowExecutionSignaledEventAttributes(a) => {
                out.push(entry(
                    "signal",
                    a.signal_name.clone(),
                    "received",
                    json!({ "input": decode_payloads(a.input.as_ref()), "identity": a.identity }),
                ));
            }
            Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a) => {
                let req = a.accepted_request.as_ref();
                let input = req.and_then(|r| r.input.as_ref());
                let mut en = entry(
                    "update",
                    input.map(|i| i.name.clone()).unwrap_or_default(),
                    "accepted",
                    json!({
                        "input": decode_payloads(input.and_then(|i| i.args.as_ref())),
                        "identity": req.and_then(|r| r.meta.as_ref()).map(|m| m.identity.clone()),
                    }),
                );
                en.summary = operator_summary(&en.detail["input"], &Value::Null);
                accepted.insert(e.event_id, en);
            }
            Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a) => {
                use temporalio_common::protos::temporal::api::update::v1::outcome::Value as Out;
                let Some(mut en) = accepted.remove(&a.accepted_event_id) else {
                    continue;
                };
                let (outcome, key, value) = match a.outcome.as_ref().and_then(|o| o.value.as_ref())
                {
                    Some(Out::Success(p)) => ("completed", "reply", decode_payloads(Some(p))),
                    Some(Out::Failure(f)) => ("failed", "failure", failure(Some(f))),
                    None => ("completed", "reply", Value::Null),
                };
                en.event_id = e.event_id;
                en.time = rfc3339(e);
                en.outcome = outcome.into();
                en.summary = operator_summary(&en.detail["input"], &value);
                if let Value::Object(map) = &mut en.detail {
                    map.insert(key.into(), value);
                }
                out.push(en);
            }
            Attributes::WorkflowExecutionUpdateRejectedEventAttributes(a) => {
                let input = a.rejected_request.as_ref().and_then(|r| r.input.as_ref());
                out.push(entry(
                    "update",
                    input.map(|i| i.name.clone()).unwrap_or_default(),
                    "rejected",
                    json!({ "input": decode_payloads(input.and_then(|i| i.args.as_ref())), "failure": failure(a.failure.as_ref()) }),
                ));
            }
            Attributes::TimerStartedEventAttributes(_) => {
                timers.insert(e.event_id, millis(e));
            }
            Attributes::TimerFiredEventAttributes(a) => {
                let started = timers.remove(&a.started_event_id).flatten();
                let mut en = entry("timer", a.timer_id.clone(), "fired", Value::Null);
                en.duration_ms = started.and_then(|s| Some(millis(e)? - s));
                out.push(en);
            }
            Attributes::WorkflowTaskFailedEventAttributes(a) => {
                out.push(entry(
                    "workflow_task_failed",
                    format!("cause {}", a.cause),
                    "failed",
                    json!({ "failure": failure(a.failure.as_ref()) }),
                ));
            }
            Attributes::WorkflowExecutionCompletedEventAttributes(a) => {
                out.push(entry(
                    "workflow_closed",
                    "completed".into(),
                    "completed",
                    json!({ "result": decode_payloads(a.result.as_ref()) }),
                ));
            }
            Attributes::WorkflowExecutionFailedEventAttributes(a) => {
                out.push(entry(
                    "workflow_closed",
                    "failed".into(),
                    "failed",
                    json!({ "failure": failure(a.failure.as_ref()) }),
                ));
            }
            Attributes::WorkflowExecutionTerminatedEventAttributes(a) => {
                out.push(entry(
                    "workflow_closed",
                    "terminated".into(),
                    "terminated",
                    json!({ "reason": a.reason, "identity": a.identity }),
                ));
            }
            Attributes::WorkflowExecutionCanceledEventAttributes(_) => {
                out.push(entry(
                    "workflow_closed",
                    "canceled".into(),
                    "canceled",
                    Value::Null,
                ));
            }
            Attributes::WorkflowExecutionTimedOutEventAttributes(_) => {
                out.push(entry(
                    "workflow_closed",
                    "timed_out".into(),
                    "timed_out",
                    Value::Null,
                ));
            }
            Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a) => {
                out.push(entry(
                    "workflow_closed",
                    "continued_as_new".into(),
                    "continued_as_new",
                    json!({ "input": decode_payloads(a.input.as_ref()) }),
                ));
            }
            _ => {}
        }
    }
    // Updates accepted and not completed yet (a pause still waiting).
    out.extend(accepted.into_values());
    out.sort_by_key(|e| e.event_id);
    out
}

/// One line per entry, for people.
pub fn render_text(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let mut line = format!("{:>5} {} {:<20} {}", e.event_id, e.time, e.kind, e.name);
        if let Some(a) = e.attempt {
            line.push_str(&format!(" attempt={a}"));
        }
        if let Some(d) = e.duration_ms {
            line.push_str(&format!(" {:.3}s", d as f64 / 1000.0));
        }
        line.push_str(&format!(" {}", e.outcome));
        if !e.summary.is_empty() {
            line.push_str(&format!(" — {}", e.summary));
        }
        if !e.detail.is_null() {
            let mut detail = e.detail.to_string();
            if detail.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|i| detail.is_char_boundary(*i))
                    .unwrap_or(0);
                detail.truncate(cut);
                detail.push('…');
            }
            line.push(' ');
            line.push_str(&detail);
        }
        s.push_str(&printable(&line));
        s.push('\n');
    }
    s
}

/// `text` with every control character written as `\u{..}`: a history
/// holds what operators typed, which a terminal must not obey (runs
/// recorded before operator text refused control characters may hold
/// some).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::{ActivityType, WorkflowType};

    #[test]
    fn the_text_timeline_never_carries_a_control_character() {
        let e = Entry {
            event_id: 7,
            time: "t".into(),
            kind: "update".into(),
            name: "approve".into(),
            attempt: None,
            duration_ms: None,
            outcome: "accepted".into(),
            summary: "mallory (\u{1b}[2J\u{1b}[Hall clear): approve accepted".into(),
            detail: serde_json::Value::Null,
        };
        let text = render_text(&[e]);
        assert!(!text.trim_end().chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
    }
    use temporalio_common::protos::temporal::api::history::v1::*;

    fn payloads(json: &str) -> Option<Payloads> {
        Some(Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".to_string(), b"json/plain".to_vec())]
                    .into_iter()
                    .collect(),
                data: json.as_bytes().to_vec(),
                ..Default::default()
            }],
        })
    }

    fn event(id: i64, millis: i64, attributes: Attributes) -> HistoryEvent {
        let mut e = HistoryEvent {
            event_id: id,
            event_time: Some(Default::default()),
            attributes: Some(attributes),
            ..Default::default()
        };
        if let Some(t) = e.event_time.as_mut() {
            t.seconds = millis / 1000;
            t.nanos = ((millis % 1000) * 1_000_000) as i32;
        }
        e
    }

    #[test]
    fn activities_pair_schedule_start_and_close_with_attempt_and_timing() {
        let events = vec![
            event(
                1,
                0,
                Attributes::WorkflowExecutionStartedEventAttributes(
                    WorkflowExecutionStartedEventAttributes {
                        workflow_type: Some(WorkflowType {
                            name: "ConsistencySweep".into(),
                        }),
                        input: payloads("{\"source\":\"manual\"}"),
                        identity: "op@host".into(),
                        ..Default::default()
                    },
                ),
            ),
            event(
                5,
                1000,
                Attributes::ActivityTaskScheduledEventAttributes(
                    ActivityTaskScheduledEventAttributes {
                        activity_type: Some(ActivityType {
                            name: "steward.sweep.repo".into(),
                        }),
                        input: payloads("{\"full\":true}"),
                        ..Default::default()
                    },
                ),
            ),
            event(
                6,
                1500,
                Attributes::ActivityTaskStartedEventAttributes(
                    ActivityTaskStartedEventAttributes {
                        scheduled_event_id: 5,
                        attempt: 2,
                        ..Default::default()
                    },
                ),
            ),
            event(
                7,
                3000,
                Attributes::ActivityTaskCompletedEventAttributes(
                    ActivityTaskCompletedEventAttributes {
                        scheduled_event_id: 5,
                        result: payloads("{\"status\":\"processed\"}"),
                        ..Default::default()
                    },
                ),
            ),
            event(
                8,
                4000,
                Attributes::WorkflowExecutionSignaledEventAttributes(
                    WorkflowExecutionSignaledEventAttributes {
                        signal_name: "pause".into(),
                        input: payloads("{\"operator\":\"ana\",\"reason\":\"lag\"}"),
                        identity: "cli".into(),
                        ..Default::default()
                    },
                ),
            ),
        ];
        let t = timeline(&events);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].kind, "workflow_started");
        assert_eq!(t[0].detail["input"]["source"], "manual");
        assert_eq!(t[0].detail["identity"], "op@host");
        assert_eq!(t[1].name, "steward.sweep.repo");
        assert_eq!(t[1].attempt, Some(2));
        assert_eq!(t[1].duration_ms, Some(2000));
        assert_eq!(t[1].outcome, "completed");
        assert_eq!(t[1].detail["result"]["status"], "processed");
        assert_eq!(t[1].detail["input"]["full"], true);
        assert_eq!(t[2].kind, "signal");
        assert_eq!(t[2].detail["input"]["operator"], "ana");
        let text = render_text(&t);
        assert!(text.contains("attempt=2 2.000s completed"), "{text}");
        assert!(text.contains("1970-01-01T00:00:03.000Z"), "{text}");
    }

    #[test]
    fn an_update_reads_as_who_why_and_what_it_changed_once_completed() {
        use temporalio_common::protos::temporal::api::update::v1::{
            Input, Meta, Outcome, Request, outcome,
        };
        let events = vec![
            event(
                10,
                1000,
                Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(
                    WorkflowExecutionUpdateAcceptedEventAttributes {
                        accepted_request: Some(Request {
                            meta: Some(Meta {
                                update_id: "u1".into(),
                                identity: "cli".into(),
                            }),
                            input: Some(Input {
                                name: "set".into(),
                                args: payloads(
                                    "{\"operator\":\"ana\",\"reason\":\"replica caught up\",\"batch_size\":5000}",
                                ),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ),
            event(
                11,
                1100,
                Attributes::WorkflowExecutionUpdateCompletedEventAttributes(
                    WorkflowExecutionUpdateCompletedEventAttributes {
                        accepted_event_id: 10,
                        outcome: Some(Outcome {
                            value: Some(outcome::Value::Success(
                                payloads(
                                    "{\"phase\":\"executing\",\"message\":\"set accepted: batch_size 500 → 5000\"}",
                                )
                                .unwrap(),
                            )),
                        }),
                        ..Default::default()
                    },
                ),
            ),
            event(
                12,
                1200,
                Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(
                    WorkflowExecutionUpdateAcceptedEventAttributes {
                        accepted_request: Some(Request {
                            input: Some(Input {
                                name: "pause".into(),
                                args: payloads("{\"operator\":\"bo\",\"reason\":\"lag\"}"),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ),
        ];
        let t = timeline(&events);
        assert_eq!(t.len(), 2, "{t:#?}");
        assert_eq!((t[0].event_id, t[0].outcome.as_str()), (11, "completed"));
        assert_eq!(
            t[0].summary,
            "ana (replica caught up): set accepted: batch_size 500 → 5000"
        );
        assert_eq!(t[0].detail["input"]["batch_size"], 5000);
        assert_eq!(
            (t[1].event_id, t[1].outcome.as_str(), t[1].summary.as_str()),
            (12, "accepted", "bo (lag)"),
            "an update still running shows as accepted"
        );
        let text = render_text(&t);
        assert!(
            text.contains(
                "completed — ana (replica caught up): set accepted: batch_size 500 → 5000"
            ),
            "{text}"
        );
    }
}
