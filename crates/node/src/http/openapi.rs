//! The OpenAPI 3.1 document of the HTTP API, served at `/v1/openapi.json`.
//!
//! Schemas come from the request and answer types themselves (`belfry_core::api`, the job
//! spec, the handlers' query types), so the document cannot describe a field the server does
//! not read. Operations are in `paths`; [`Contract`] adds what every route shares: the bearer
//! scheme, the error answers each route can give (from its access rule, parameters and body),
//! and the console's pages. The tests hold the document to [`ROUTES`]: every route is in it and
//! nothing else is.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use belfry_core::api::{ErrorBody, ErrorDetail, ItemError};
use belfry_core::{FireStatus, JobSpec};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::response::{Response as Answer, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{Access, ROUTES};

mod paths;

/// The body of `POST /v1/jobs:batch`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobBatch {
    /// 1 to 1000 job specs, created together or not at all.
    jobs: Vec<JobSpec>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "belfry",
        description = "A clustered job scheduler: jobs, their fires, dead letters, the cluster and its tokens. \
                       Every node serves the same API; writes answer once a majority has them. docs/API.md \
                       describes it in prose.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        paths::create_job, paths::create_jobs, paths::list_jobs, paths::get_job, paths::replace_job,
        paths::delete_job, paths::pause_job, paths::resume_job, paths::trigger_job, paths::upcoming,
        paths::preview, paths::list_executions, paths::get_execution, paths::stats, paths::list_dead_letters,
        paths::requeue_dead_letters, paths::purge_dead_letters, paths::purge_dead_letter,
        paths::requeue_dead_letter, paths::cluster, paths::add_member, paths::remove_member,
        paths::transfer_leadership, paths::backup, paths::create_token, paths::list_tokens, paths::revoke_token,
        paths::healthz, paths::readyz, paths::metrics, paths::openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail, ItemError, FireStatus)),
    modifiers(&Contract),
    security(("bearer" = [])),
)]
struct Document;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    // The document is made of belfry's own types: serializing it cannot fail.
    JSON.get_or_init(|| Document::openapi().to_json().unwrap_or_default())
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document()).into_response()
}

/// What every operation shares (module docs).
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bf_<id>_<secret>")
                    .description(Some("An API token (`belfry token create`); its role decides what it may call."))
                    .build(),
            ),
        );
        for route in ROUTES {
            let method = http_method(&route.method);
            if route.console {
                doc.paths.add_path_operation(route.path, vec![method], console_page(route.path));
            } else if let Some(op) = doc.paths.paths.get_mut(route.path).and_then(|item| operation_mut(item, &method)) {
                add_errors(op, route.access, route.method == Method::POST || route.method == Method::PUT);
            }
        }
    }
}

/// The console's pages and files: HTML (or a file) for anyone, data from the API.
fn console_page(path: &str) -> Operation {
    let (what, content_type) = match path {
        "/console/{file}" => ("A file of the console (script, style or image).", "*/*"),
        _ => ("A page of the console: the shell, which reads the API with the token it is given.", "text/html"),
    };
    let mut op = OperationBuilder::new()
        .tag("console")
        .summary(Some(what))
        .security(SecurityRequirement::default())
        .response("200", ResponseBuilder::new().description(what).content(content_type, ContentBuilder::new().build()))
        .build();
    for name in path_parameters(path) {
        let parameter = utoipa::openapi::path::ParameterBuilder::new()
            .name(name)
            .parameter_in(utoipa::openapi::path::ParameterIn::Path)
            .required(utoipa::openapi::Required::True)
            .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
            .build();
        op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(parameter));
    }
    if path.contains('{') {
        op.responses.responses.insert("404".into(), error("No such page or file"));
    }
    op
}

/// The `{name}`s of a path template.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Adds the errors an operation can answer besides its own: 400 with parameters or a body,
/// 401/403 behind a token, 404 with path parameters, 413/415 with a body, 429 always, 503
/// wherever a read point or a commit is needed.
fn add_errors(op: &mut Operation, access: Access, has_body: bool) {
    let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let path_params = op.parameters.as_ref().is_some_and(|p| {
        p.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Path))
    });
    let api = access != Access::Open;
    let mut add = |status: &str, description: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| error(description));
    };
    if params || has_body {
        add("400", "`invalid`: a parameter or a field fails validation; `field` names it");
    }
    if api || access == Access::Metrics {
        add("401", "`unauthenticated`: no valid token");
        add("403", "`forbidden`: the token's role may not call this, or the Origin is another site's");
    }
    if path_params {
        add("404", "`not_found`: no such item");
    }
    if has_body {
        add("413", "`too_large`: the body is over the limit");
        add("415", "`unsupported_media_type`: the body is not application/json");
    }
    add("429", "`rate_limited`: over the token's or address's rate; Retry-After says when to come back");
    if api {
        add("503", "`no_leader` or `outcome_unknown`: no leader now, or a write's commit could not be confirmed");
    }
}

/// An error answer: the one error shape.
fn error(description: &str) -> RefOr<Answer> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build(),
    )
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &HttpMethod) -> Option<&'a mut Operation> {
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
