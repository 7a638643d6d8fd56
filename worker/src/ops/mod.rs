//! What an operator can do, once: start a workflow, send it an operator
//! action, query it, read the state store, sign an action. The CLI and the
//! HTTP API are two faces over this layer; neither calls the other.
//!
//! Errors cross the layer as [`Error`] variants built from the SDK's typed
//! errors, never from text: a face picks its HTTP status or exit code by
//! variant.

pub mod sign;
