//! Compiles proto/belfry.proto with a vendored protoc, so a fresh clone builds with no install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/belfry.proto";
    println!("cargo:rerun-if-changed={proto}");
    if std::env::var_os("PROTOC").is_none() {
        // Build scripts are single-threaded: setting the variable here races with nothing.
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
