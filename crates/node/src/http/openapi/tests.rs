use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn doc() -> Value {
    serde_json::from_str(document()).expect("the document is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_document_has_every_route_of_the_router_and_nothing_else() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    let documented = operations(&doc);
    let missing: Vec<_> = routes.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routes missing from the document: {missing:?}");
    assert!(phantom.is_empty(), "operations that are no route: {phantom:?}");
}

#[test]
fn open_routes_need_no_token_and_the_rest_name_their_errors() {
    let doc = doc();
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]), "a token by default");
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        let responses = op["responses"].as_object().expect("responses");
        let open =
            op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|r| r.is_empty())));
        match route.access {
            Access::Open => assert!(open, "{} {} needs no token", route.method, route.path),
            Access::Metrics => assert!(open && responses.contains_key("401"), "/metrics: open, or a token"),
            Access::Least(_) => {
                assert!(!open, "{} {} needs a token", route.method, route.path);
                for status in ["401", "403", "429", "503"] {
                    assert!(responses.contains_key(status), "{} {} lacks {status}", route.method, route.path);
                }
            }
        }
        if route.path.contains('{') {
            assert!(responses.contains_key("404"), "{} {} lacks 404", route.method, route.path);
        }
        for (status, answer) in responses {
            if status.starts_with('4') || status.as_str() == "503" && route.path.starts_with("/v1/") {
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{} {} {status}", route.method, route.path);
            }
        }
    }
}

#[test]
fn bodies_and_answers_come_from_the_api_types() {
    let doc = doc();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in
        ["JobSpec", "JobView", "JobList", "ExecutionView", "ClusterView", "StatsView", "ErrorBody", "HumanDuration"]
    {
        assert!(schemas.contains_key(name), "no {name} schema");
    }
    let spec = &schemas["JobSpec"];
    assert_eq!(spec["additionalProperties"], false, "unknown fields are refused");
    let required: BTreeSet<&str> = spec["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["name", "schedule", "target"]));
    let create = &doc["paths"]["/v1/jobs"]["post"];
    assert_eq!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/JobSpec");
    assert!(create["responses"]["201"]["headers"]["ETag"].is_object());
}

#[test]
fn docs_api_md_names_every_api_route() {
    let prose = include_str!("../../../../../docs/API.md");
    for route in ROUTES.iter().filter(|r| !r.console) {
        let named = format!("`{} {}", route.method, route.path);
        assert!(prose.contains(&named), "docs/API.md does not name {} {}", route.method, route.path);
    }
}
