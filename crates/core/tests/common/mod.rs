//! What the golden-script tests share: the script clock (seconds after
//! 2026-01-01T00:00:00Z), argument readers, and `scripts!`, which makes one `#[test]` per
//! script file of a folder and a test that every file of the folder has one.

#![allow(dead_code)]

use std::error::Error;

use chrono::{DateTime, Duration, Utc};
use goldenscript::Command as Line;

/// The script clock's zero.
pub fn base() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("a valid instant")
}

/// `secs` seconds after [`base`].
pub fn at(secs: f64) -> DateTime<Utc> {
    base() + Duration::milliseconds((secs * 1000.0).round() as i64)
}

/// An instant as seconds after [`base`], with milliseconds only when it has some.
pub fn show(t: DateTime<Utc>) -> String {
    let ms = (t - base()).num_milliseconds();
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{:.3}", ms as f64 / 1000.0)
    }
}

/// The value of `key=`, if given.
pub fn arg<'a>(line: &'a Line, key: &str) -> Option<&'a str> {
    line.args.iter().find(|a| a.key.as_deref() == Some(key)).map(|a| a.value.as_str())
}

/// The value of `key=` parsed, or `default`; an error when neither is there.
pub fn num<T: std::str::FromStr>(line: &Line, key: &str, default: Option<T>) -> Result<T, Box<dyn Error>>
where
    T::Err: Error + 'static,
{
    match arg(line, key) {
        Some(v) => Ok(v.parse()?),
        None => default.ok_or_else(|| format!("{key}= is required").into()),
    }
}

/// The first argument, when it has no key (a name or a fire key).
pub fn pos(line: &Line) -> Result<&str, Box<dyn Error>> {
    Ok(line.args.first().filter(|a| a.key.is_none()).ok_or("a name or key is required")?.value.as_str())
}

/// Runs the script `name` of the folder `dir` (below the crate) with `runner`.
pub fn run_script(runner: &mut impl goldenscript::Runner, dir: &str, name: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
    goldenscript::run(runner, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The files of the folder `dir` (below the crate), sorted.
pub fn script_files(dir: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// `scripts!(Runner, "tests/dir", test_name => "file", ...)`: one `#[test]` per script file,
/// named after it, so a failure names its script; and `every_script_has_a_test`, so a new
/// script cannot be skipped silently.
#[macro_export]
macro_rules! scripts {
    ($runner:ty, $dir:literal, $($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                common::run_script(&mut <$runner>::default(), $dir, $file);
            }
        )*

        #[test]
        fn every_script_has_a_test() {
            let mut listed = vec![$($file.to_string()),*];
            listed.sort();
            assert_eq!(common::script_files($dir), listed, "add each file of {} to scripts!", $dir);
        }
    };
}

/// One replica's state and log position; every apply is followed by the index check.
#[derive(Default)]
pub struct Replica {
    /// The state.
    pub state: belfry_core::State,
    /// The index of the last entry applied.
    pub index: u64,
}

impl Replica {
    /// Applies `command` as the next entry, then checks the indexes against the data.
    pub fn apply(&mut self, command: belfry_core::Command) -> belfry_core::Response {
        self.index += 1;
        let response = self.state.apply(self.index, command);
        if let Err(e) = self.state.check_indexes() {
            panic!("after log index {}: {e}", self.index);
        }
        response
    }
}
