//! The Temporal namespace as steward needs it: a retention that fits an
//! audit trail (`[temporal] retention_days`), and the custom search
//! attributes its workflows set (`names::SEARCH_ATTRIBUTES`).
//!
//! `steward dev` applies both to its own server on every start; the
//! compose deployment's setup step does the same for the cluster; every
//! worker checks them and says on stderr what is missing.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use steward_proto::names;
use temporalio_client::tonic::Request;
use temporalio_client::{Client, NamespacedClient as _};
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::namespace::v1::NamespaceConfig;
use temporalio_common::protos::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, ListSearchAttributesRequest,
};
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeNamespaceRequest, UpdateNamespaceRequest,
};

const DAY: u64 = 86_400;

/// The namespace's workflow retention.
pub async fn retention(client: &Client) -> anyhow::Result<Duration> {
    let namespace = client.namespace();
    let described = client
        .connection()
        .workflow_service()
        .describe_namespace(Request::new(DescribeNamespaceRequest {
            namespace: namespace.clone(),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("describing namespace {namespace}"))?
        .into_inner();
    let ttl = described
        .config
        .and_then(|c| c.workflow_execution_retention_ttl)
        .map(|d| Duration::from_secs(d.seconds.max(0) as u64))
        .unwrap_or_default();
    Ok(ttl)
}

/// Sets the namespace's retention to `days` days.
pub async fn set_retention(client: &Client, days: u32) -> anyhow::Result<()> {
    let namespace = client.namespace();
    let mut config = NamespaceConfig {
        workflow_execution_retention_ttl: Some(Default::default()),
        ..Default::default()
    };
    if let Some(ttl) = config.workflow_execution_retention_ttl.as_mut() {
        ttl.seconds = i64::from(days) * DAY as i64;
    }
    client
        .connection()
        .workflow_service()
        .update_namespace(Request::new(UpdateNamespaceRequest {
            namespace: namespace.clone(),
            config: Some(config),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("setting the retention of namespace {namespace} to {days}d"))?;
    Ok(())
}

/// A warning when the namespace keeps closed runs for less than `days`
/// days: the audit trail would go before the config says it may.
pub async fn retention_warning(client: &Client, days: u32) -> Option<String> {
    let wanted = Duration::from_secs(u64::from(days) * DAY);
    match retention(client).await {
        Ok(have) if have < wanted => Some(format!(
            "warning: namespace {} keeps closed workflow runs for {}, shorter than \
             [temporal] retention_days = {days}: histories (the audit trail) go sooner; \
             `steward dev` sets it, or run `temporal operator namespace update --retention {days}d {}`",
            client.namespace(),
            humanize(have),
            client.namespace()
        )),
        Ok(_) => None,
        Err(e) => Some(format!(
            "warning: could not read the retention of namespace {}: {e:#}",
            client.namespace()
        )),
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(DAY) {
        format!("{}d", s / DAY)
    } else {
        format!("{}h", s / 3600)
    }
}

/// Registers the search attributes steward's workflows set that the
/// namespace lacks; the names it added.
pub async fn ensure_search_attributes(client: &Client) -> anyhow::Result<Vec<String>> {
    let namespace = client.namespace();
    let mut operator = client.connection().operator_service();
    let have = operator
        .list_search_attributes(Request::new(ListSearchAttributesRequest {
            namespace: namespace.clone(),
        }))
        .await
        .with_context(|| format!("listing the search attributes of {namespace}"))?
        .into_inner()
        .custom_attributes;
    let missing: HashMap<String, i32> = names::SEARCH_ATTRIBUTES
        .iter()
        .filter(|(name, _)| !have.contains_key(*name))
        .map(|(name, kind)| {
            let kind = indexed_type(kind).unwrap_or(IndexedValueType::Keyword);
            (name.to_string(), kind as i32)
        })
        .collect();
    if missing.is_empty() {
        return Ok(vec![]);
    }
    let mut added: Vec<String> = missing.keys().cloned().collect();
    added.sort();
    operator
        .add_search_attributes(Request::new(AddSearchAttributesRequest {
            search_attributes: missing,
            namespace: namespace.clone(),
        }))
        .await
        .with_context(|| {
            format!(
                "registering the search attributes {} in {namespace}",
                added.join(", ")
            )
        })?;
    Ok(added)
}

/// The Temporal type `kind` names (`Keyword`, `KeywordList`, `Bool`).
fn indexed_type(kind: &str) -> Option<IndexedValueType> {
    let mut upper = String::new();
    for (i, c) in kind.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            upper.push('_');
        }
        upper.push(c.to_ascii_uppercase());
    }
    IndexedValueType::from_str_name(&format!("INDEXED_VALUE_TYPE_{upper}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_in_days_or_hours() {
        assert_eq!(humanize(Duration::from_secs(DAY)), "1d");
        assert_eq!(humanize(Duration::from_secs(90 * DAY)), "90d");
        assert_eq!(humanize(Duration::from_secs(6 * 3600)), "6h");
    }

    #[test]
    fn every_search_attribute_has_a_temporal_type() {
        for (name, kind) in names::SEARCH_ATTRIBUTES {
            assert!(indexed_type(kind).is_some(), "{name}: {kind}");
        }
        assert_eq!(
            indexed_type("KeywordList"),
            Some(IndexedValueType::KeywordList)
        );
    }
}
