//! The `belfry` binary's command line (its presence also makes `cargo test` build the binary
//! that the process-level tests in `tests/` run).

use std::process::Command;

fn belfry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_belfry"))
}

#[test]
fn help_lists_the_server_subcommands() {
    let out = belfry().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "dev", "sink"] {
        assert!(text.contains(sub), "--help does not mention {sub}:\n{text}");
    }
}

#[test]
fn a_malformed_initial_cluster_fails_with_one_clear_line() {
    let dir = std::env::temp_dir().join(format!("belfry-cli-test-{}", std::process::id()));
    let out = belfry()
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--initial-cluster", "1:x"])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a bad --initial-cluster must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--initial-cluster") && err.contains("expected id=host:port"), "stderr: {err}");
}

#[test]
fn serve_flags_read_belfry_environment_variables() {
    let out = belfry().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for var in [
        "BELFRY_ID",
        "BELFRY_HTTP_ADDR",
        "BELFRY_GRPC_ADDR",
        "BELFRY_DATA_DIR",
        "BELFRY_INITIAL_CLUSTER",
        "BELFRY_JOIN",
    ] {
        assert!(text.contains(var), "serve --help does not mention {var}");
    }
}

#[test]
fn runtime_threads_outside_1_to_1024_is_a_usage_error() {
    for bad in ["0", "1025", "two"] {
        let out = belfry().args(["serve", "--runtime-threads", bad]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--runtime-threads {bad}: {err}");
        assert!(err.contains("--runtime-threads"), "--runtime-threads {bad}: {err}");
    }
}
