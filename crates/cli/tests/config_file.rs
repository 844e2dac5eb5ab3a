//! The reference configuration file in deploy/ is accepted by `belfry serve --config`.

use std::process::Command;

#[test]
fn the_reference_config_file_parses() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/belfry.toml");
    // The file is read when the node starts; an election timeout too short for the heartbeat
    // stops the start right after the file was applied, before anything binds a port.
    let out = Command::new(env!("CARGO_BIN_EXE_belfry"))
        .args(["serve", "--config", file, "--election-timeout-ms", "100"])
        .output()
        .expect("run belfry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // The file applied cleanly: the only complaint is the flag that overrides it.
    assert!(stderr.contains("--election-timeout-ms must be more than twice --heartbeat-ms"), "{stderr}");
}
