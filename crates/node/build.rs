//! Compiles proto/belfry.proto with a vendored protoc, so a fresh clone builds with no install,
//! and embeds the console's files (`console/`) into the binary.

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/belfry.proto";
    println!("cargo:rerun-if-changed={proto}");
    if std::env::var_os("PROTOC").is_none() {
        // Build scripts are single-threaded: setting the variable here races with nothing.
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;
    embed_console()
}

/// Writes `$OUT_DIR/console_files.rs`: `CONSOLE_FILES`, every file of `console/` as
/// `(name, bytes)`, sorted by name. Cargo reruns this when anything in the folder changes.
fn embed_console() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("console");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = String::from("/// The console's files, by name.\npub static CONSOLE_FILES: &[(&str, &[u8])] = &[\n");
    for name in names {
        let path = dir.join(&name);
        writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string())?;
    }
    out.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR")?).join("console_files.rs"), out)?;
    Ok(())
}
