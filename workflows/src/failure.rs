//! What a workflow records when an activity failed for good: the
//! activity's own message, not the SDK's wrapping of it.

/// The activity's own failure message: the SDK wraps it in layers that
/// start with "Activity ..." or "Failure(...", and below it come its causes.
pub fn failure_message(e: &dyn std::error::Error) -> String {
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let msg = err.to_string();
        if !msg.starts_with("Activity ") && !msg.starts_with("Failure(") {
            return msg;
        }
        current = err.source();
    }
    e.to_string()
}
