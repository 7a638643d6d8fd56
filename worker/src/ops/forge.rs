//! A pull-request comment on the forge (`!testme`, `!testme --quick`)
//! that starts a cold run or a trial of the pull request's head, recorded
//! as the commenter's; the run posts its commit status back. The API
//! verifies the webhook's signature; this decides what the comment asks
//! and whether its author may ask it.

use steward_proto::v1::ForgeOrigin;

use super::upgrade::Start;
use super::{Actor, Error, Ops, Result, Started};

/// A comment on a pull request, as the webhook delivered it.
#[derive(Debug, Clone)]
pub struct PullComment {
    /// The repository (`owner/name`).
    pub repo: String,
    /// The pull request's number.
    pub pull: u64,
    /// Who commented (their forge login).
    pub commenter: String,
    /// What they wrote.
    pub body: String,
}

/// What a comment started.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ForgeStarted {
    /// The app whose recipe the repository is.
    pub app: String,
    /// `cold` or `trial`.
    pub mode: String,
    /// The head commit tried.
    pub sha: String,
    /// Who asked.
    pub commenter: String,
    /// The run.
    pub workflow_id: String,
    /// Its run id.
    pub run_id: String,
}

impl Ops {
    /// The run `comment` asks for, started as its commenter: None when the
    /// comment is no configured command.
    pub async fn forge_comment(&self, comment: PullComment) -> Result<Option<ForgeStarted>> {
        let config = &self.loaded().config;
        let forge = config
            .forge
            .as_ref()
            .ok_or_else(|| Error::NotFound("this steward has no [forge] in its config".into()))?;
        let Some((command, mode)) = forge.command_of(&comment.body) else {
            return Ok(None);
        };
        let app = forge.repos.get(&comment.repo).ok_or_else(|| {
            Error::NotFound(format!(
                "repository `{}` is not in [forge] repos: steward does not know which app it is \
                 the recipe of",
                comment.repo
            ))
        })?;
        let who = &comment.commenter;
        if config.operators.is_empty() && !forge.allowed_commenters.contains(who) {
            return Err(Error::Forbidden(format!(
                "`{who}` may not start runs from the forge: not in [forge] allowed_commenters"
            )));
        }
        // With operators declared, the commenter is one of them (by forge
        // login): start_upgrade refuses anyone else, by name.
        let actor = Actor::typed(self.loaded(), who);
        let sha = forge
            .pull_head(&comment.repo, comment.pull)
            .await
            .map_err(|e| Error::upstream("reading the pull request", e))?;
        let started: Started = self
            .start_upgrade(
                &actor,
                app,
                Start {
                    mode,
                    version: sha.clone(),
                    reason: format!("{command} on {}#{}", comment.repo, comment.pull),
                    forge: Some(ForgeOrigin {
                        repo: comment.repo.clone(),
                        pull: comment.pull,
                        sha: sha.clone(),
                        commenter: who.clone(),
                        command,
                    }),
                },
            )
            .await?;
        Ok(Some(ForgeStarted {
            app: app.clone(),
            mode: mode.as_str().into(),
            sha,
            commenter: who.clone(),
            workflow_id: started.workflow_id,
            run_id: started.run_id,
        }))
    }
}
