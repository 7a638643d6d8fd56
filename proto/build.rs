//! Compiles the `.proto` contract with prost; every message derives serde so
//! that payloads are JSON in Temporal's history, and a schema for the API's
//! OpenAPI document.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/steward/v1/sweep.proto",
        "proto/steward/v1/backfill.proto",
        "proto/steward/v1/upgrade.proto",
        "proto/steward/v1/restore.proto",
        "proto/steward/v1/drill.proto",
        "proto/steward/v1/placement.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new()
        .type_attribute(
            ".",
            "#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)] #[serde(default)]",
        )
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
