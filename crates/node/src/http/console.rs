//! The console (docs/CONSOLE.md): pages served by every node, built in the browser from the
//! same `/v1` API and the same tokens the CLI uses.
//!
//! The files of `crates/node/console/` are embedded at build time (`build.rs`) and served at
//! `/console/<file>`; every page path answers the shell, `index.html`, whose script routes by
//! path. The pages' content security policy allows scripts, styles and fetches from this node
//! only and nothing inline, so a value shown on a page can never run as code. With
//! `--console-dir` a node reads the files from that folder at each request instead, for
//! working on the console without a rebuild.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::Param;
use super::Api;

include!(concat!(env!("OUT_DIR"), "/console_files.rs"));

/// The shell every page path answers.
const SHELL: &str = "index.html";

/// The pages' policy: everything from this node, nothing inline, no frames, no form posts
/// (forms are sent by the script, as JSON), no base URL.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                           img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the files come from.
#[derive(Debug, Clone, Default)]
pub enum ConsoleFiles {
    /// The copies in the binary.
    #[default]
    Embedded,
    /// A folder read at each request (`--console-dir`).
    Dir(PathBuf),
}

/// A page: the shell.
pub async fn page(State(ctx): State<Api>) -> Response {
    match read(&ctx.config.console, SHELL).await {
        Some(bytes) => {
            ([(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY))], typed(SHELL, bytes))
                .into_response()
        }
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "this build has no console").into_response(),
    }
}

/// `/console/{file}`.
pub async fn asset(State(ctx): State<Api>, Param(file): Param<String>) -> Response {
    match read(&ctx.config.console, &file).await {
        Some(bytes) => typed(&file, bytes).into_response(),
        None => ApiError::not_found("console file", &file).into_response(),
    }
}

/// The file `name` of the console, when it is one (a plain name of a known type).
async fn read(files: &ConsoleFiles, name: &str) -> Option<Bytes> {
    content_type(name)?;
    match files {
        ConsoleFiles::Embedded => {
            CONSOLE_FILES.iter().find(|(n, _)| *n == name).map(|(_, bytes)| Bytes::from_static(bytes))
        }
        ConsoleFiles::Dir(dir) => tokio::fs::read(dir.join(name)).await.ok().map(Bytes::from),
    }
}

fn typed(name: &str, bytes: Bytes) -> impl IntoResponse {
    let content_type = content_type(name).unwrap_or("application/octet-stream");
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], bytes)
}

/// The content type of a console file's name, or `None` for a name that is not one:
/// `[a-z0-9_-]+` and a known extension, so no path can leave the folder.
fn content_type(name: &str) -> Option<&'static str> {
    let (stem, ext) = name.rsplit_once('.')?;
    let plain = !stem.is_empty()
        && stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !plain {
        return None;
    }
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// Whether `dir` holds a console (its shell), for checking `--console-dir` at start.
pub fn has_shell(dir: &Path) -> bool {
    dir.join(SHELL).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_types_are_console_files() {
        assert_eq!(content_type("app.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("index.html"), Some("text/html; charset=utf-8"));
        for bad in ["../app.js", "a/b.js", ".js", "app", "App.js", "app.exe", "app.js.map", "%2e%2e.js", "a b.css"] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_embedded_file_is_served_and_nothing_in_them_needs_inline_script_or_style() {
        assert!(CONSOLE_FILES.iter().any(|(n, _)| *n == SHELL), "the shell is embedded");
        for (name, bytes) in CONSOLE_FILES {
            assert!(content_type(name).is_some(), "{name} is embedded but would never be served");
            if !name.ends_with(".html") {
                continue;
            }
            let text = std::str::from_utf8(bytes).expect("html is utf-8").to_ascii_lowercase();
            // Under the page policy an inline block, a style attribute or an event handler
            // would be refused by the browser: the page would silently lose it.
            for script in text.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap_or("");
                assert!(tag.contains("src="), "{name}: an inline <script>");
            }
            for needle in ["<style", " style=", " onclick=", " onload=", " onsubmit=", " oninput=", "javascript:"] {
                assert!(!text.contains(needle), "{name}: {needle} would need 'unsafe-inline'");
            }
        }
        assert!(!PAGE_POLICY.contains("unsafe"), "{PAGE_POLICY}");
    }
}
