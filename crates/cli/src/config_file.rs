//! `belfry serve --config FILE`: settings from a TOML file, below flags and `BELFRY_*`
//! variables in precedence. Keys are the flag names (`heartbeat-ms` or `heartbeat_ms`); an
//! unknown key is an error naming it, so a typo never passes silently.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context as _};
use clap::parser::ValueSource;
use clap::{Args, FromArgMatches};

use crate::serve::ServeArgs;

/// Re-reads `serve`'s arguments (`argv` after the subcommand) with `file`'s settings filling
/// in every flag given neither on the command line nor in the environment.
pub fn apply(file: &Path, argv: Vec<OsString>) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", file.display()))?;
    let command = || ServeArgs::augment_args(clap::Command::new("serve").no_binary_name(true));
    let given = command().try_get_matches_from(&argv)?;
    let mut args = argv;
    for (key, value) in &table {
        let id = key.replace('-', "_");
        if id == "config" || command().get_arguments().all(|a| a.get_id().as_str() != id) {
            bail!("{}: unknown setting {key:?}", file.display());
        }
        if matches!(given.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!("{}: {key} must be a string, integer or boolean, not {}", file.display(), other.type_str()),
        };
        args.push(format!("--{}", id.replace('_', "-")).into());
        args.push(value.into());
    }
    let matches = command().try_get_matches_from(&args).with_context(|| format!("applying {}", file.display()))?;
    Ok(ServeArgs::from_arg_matches(&matches)?)
}

/// The arguments after `serve` on this process's command line.
pub fn serve_argv() -> Vec<OsString> {
    std::env::args_os().skip_while(|a| a != "serve").skip(1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn file_fills_in_what_flags_leave_out() {
        let file = write("id = 3\nheartbeat-ms = 100\nelection_timeout_ms = 900\ndata-dir = \"/var/lib/belfry\"\n");
        let args = apply(file.path(), vec!["--id".into(), "7".into()]).expect("applies");
        assert_eq!(args.id, 7, "a flag beats the file");
        assert_eq!(args.heartbeat_ms, 100);
        assert_eq!(args.election_timeout_ms, 900);
        assert_eq!(args.data_dir, Path::new("/var/lib/belfry"));
        assert_eq!(args.lease_ms, 5000, "defaults stay for what nobody set");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = apply(write("heartbeat = 100\n").path(), vec![]).unwrap_err();
        assert!(err.to_string().contains("unknown setting \"heartbeat\""), "{err}");
        let err = apply(write("heartbeat-ms = \"fast\"\n").path(), vec![]).unwrap_err();
        assert!(format!("{err:#}").contains("heartbeat-ms"), "{err:#}");
        let err = apply(write("id = [1]\n").path(), vec![]).unwrap_err();
        assert!(err.to_string().contains("must be a string, integer or boolean"), "{err}");
    }
}
