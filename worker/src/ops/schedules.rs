//! Pausing and resuming steward's schedules, with who and why.

use steward_activities::roster::Target;

use super::{Actor, Error, Ops, Result};
use crate::config::ScheduleConfig;
use crate::schedules::ScheduleRow;

/// A schedule's state after a pause or resume.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ScheduleChanged {
    /// The schedule.
    pub schedule_id: String,
    /// Whether it is paused now.
    pub paused: bool,
    /// Who changed it.
    pub by: String,
    /// Why.
    pub reason: String,
}

impl Ops {
    /// The schedules steward manages, as the server has them.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        crate::schedules::list(self.client().await?)
            .await
            .map_err(|e| Error::upstream("listing schedules", e))
    }

    /// The configured schedule `name`.
    pub fn schedule(&self, name: &str) -> Result<ScheduleConfig> {
        let wanted = self.loaded().schedules();
        wanted
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(super::unknown(
                    "schedule",
                    name,
                    wanted.iter().map(|s| s.name.as_str()),
                ))
            })
    }

    /// Pauses (`pause` true) or resumes schedule `name` as `actor`, keeping
    /// who and why in its note.
    pub async fn change_schedule(
        &self,
        actor: &Actor,
        name: &str,
        pause: bool,
        reason: &str,
    ) -> Result<ScheduleChanged> {
        let verb = if pause { "pause" } else { "resume" };
        super::operator_text(&actor.name, reason, "reason")?;
        let s = self.schedule(name)?;
        self.permit(actor, Target::Schedule(name), verb, &[])?;
        let client = self.client().await?;
        let id = crate::schedules::schedule_id(&s);
        if pause {
            crate::schedules::pause(client, &s, &actor.name, reason).await
        } else {
            crate::schedules::resume(client, &s, &format!("{}: {reason}", actor.name)).await
        }
        .map_err(|e| Error::upstream(format!("{verb} {id}"), e))?;
        // A paused schedule waits for a person: say so, and what resumes it.
        if pause {
            self.notice(
                "schedule.paused",
                &id,
                format!(
                    "schedule {id} paused by {}: {reason}; nothing it starts runs until \
                     `steward schedules resume {name}`",
                    actor.name
                ),
            )
            .await;
        }
        Ok(ScheduleChanged {
            schedule_id: id,
            paused: pause,
            by: actor.name.clone(),
            reason: reason.to_string(),
        })
    }
}
