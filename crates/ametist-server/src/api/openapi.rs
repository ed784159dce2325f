//! `GET /openapi.json`: Ametist's own OpenAPI document.
//!
//! The document is written by hand in YAML (`openapi.yaml` beside this file, easier to
//! read and review than JSON), built into the binary, and served as JSON. It is what
//! `tests/hostile/test_fuzz.py` fuzzes with schemathesis, so it describes request bodies as
//! precisely as the handlers accept them. The tests below keep it in step with `router()`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The document as written.
const SOURCE: &str = include_str!("openapi.yaml");

/// The document, parsed once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_yaml_ng::from_str(SOURCE).expect("openapi.yaml parses: api::openapi::tests check it at build time")
    })
}

/// `GET /openapi.json`.
pub async fn get() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Routes registered but left out of the document, and why.
    const UNDOCUMENTED: &[&str] = &[
        // Registered only with `server.enable_fault_injection`, for tests that make a
        // partition panic or stall; not part of the API a client may rely on.
        "/collections/{name}/partitions/{id}/fault",
    ];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

    /// Every documented path with its methods.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let paths = document()["paths"].as_object().expect("the document has `paths`");
        paths
            .iter()
            .map(|(p, item)| {
                let item = item.as_object().expect("a path item is an object");
                let methods = item.keys().filter(|k| METHODS.contains(&k.as_str())).cloned().collect();
                (p.clone(), methods)
            })
            .collect()
    }

    /// The text from `start` to the `)` that closes the `(` just before it.
    fn call_arguments(text: &str) -> &str {
        let mut depth = 1;
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[..i];
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// The method routers named in a `.route(...)` call's arguments (`get(h).put(h)`), or
    /// `any`.
    fn methods_in(args: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for m in METHODS.iter().chain(&["any"]) {
            let needle = format!("{m}(");
            for (at, _) in args.match_indices(&needle) {
                let before = args[..at].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    found.insert((*m).to_string());
                }
            }
        }
        found
    }

    /// The routes the source registers: path literals in `router()` (and in `metrics.rs`),
    /// with the methods of their `.route("...", ...)` call; a path given through a variable
    /// (the loop over the routes not supported yet) answers any method.
    fn registered() -> BTreeMap<String, BTreeSet<String>> {
        let api = include_str!("mod.rs");
        let start = api.find("pub fn router(").expect("api/mod.rs has router()");
        let body = &api[start..];
        let body = &body[..body.find("\n}\n").expect("router() ends with a closing brace")];
        let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for source in [body, include_str!("../metrics.rs")] {
            for (at, _) in source.match_indices(".route(") {
                let args = call_arguments(&source[at + ".route(".len()..]);
                if let Some(rest) = args.trim_start().strip_prefix('"') {
                    let path = &rest[..rest.find('"').expect("a closed path literal")];
                    routes.entry(path.to_string()).or_default().extend(methods_in(args));
                }
            }
        }
        // Path literals outside `.route("...")` calls: the routes served for any method.
        for piece in body.split('"').skip(1).step_by(2) {
            if piece.starts_with('/') && !routes.contains_key(piece) {
                routes.insert(piece.to_string(), BTreeSet::from(["any".to_string()]));
            }
        }
        routes
    }

    #[test]
    fn the_document_parses_as_openapi_3_and_serves_as_json() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
        assert_eq!(doc["info"]["version"], crate::api::QDRANT_COMPAT_VERSION, "the Qdrant version we follow");
        let text = doc.to_string();
        let back: Value = serde_json::from_str(&text).expect("the served JSON parses");
        assert_eq!(&back, doc);
        // Every `$ref` names something the document defines.
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local references"));
            assert!(doc.pointer(pointer).is_some(), "{r} points at nothing");
        }
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let documented = documented();
        let mut registered = registered();
        for path in UNDOCUMENTED {
            assert!(registered.remove(*path).is_some(), "{path} is no longer registered: drop it from UNDOCUMENTED");
        }
        assert!(registered.len() > 40, "the router scan found too few routes: {registered:?}");
        let only_served: Vec<_> = registered.keys().filter(|p| !documented.contains_key(*p)).collect();
        let only_documented: Vec<_> = documented.keys().filter(|p| !registered.contains_key(*p)).collect();
        assert!(only_served.is_empty(), "routes missing from openapi.yaml: {only_served:?}");
        assert!(
            only_documented.is_empty(),
            "openapi.yaml documents routes router() does not serve: {only_documented:?}"
        );
        for (path, methods) in &registered {
            let doc = &documented[path];
            if methods.contains("any") {
                assert!(!doc.is_empty(), "{path}: document the method Qdrant uses");
            } else {
                assert_eq!(doc, methods, "{path}: documented methods differ from the served ones");
            }
        }
    }

    #[test]
    fn every_operation_answers_in_the_envelope_or_names_why_not() {
        // Every error response is the JSON envelope, so a client reads every refusal the
        // same way; also 405 and 413, made before a handler runs (`envelope::json_errors`).
        for (path, item) in document()["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: responses"));
                assert!(!responses.is_empty(), "{method} {path}: no responses");
                for (status, r) in responses {
                    if status.starts_with('4') {
                        let r = match r.get("$ref").and_then(Value::as_str) {
                            Some(p) => document().pointer(&p[1..]).expect("resolved above"),
                            None => r,
                        };
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorResponse",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
