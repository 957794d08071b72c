//! The OpenAPI documents of the web services (feature `http`).
//!
//! **One document for the whole gateway.** The browser, the load test and outside checks talk
//! to one origin, so `GET /api/openapi.json` (served by the ticketing API) describes every
//! public endpoint behind the gateway: the ticketing API's own routes, the waiting room's
//! `/api/queue/...` and the notifier's `/ws`. Services never import each other, so the other
//! two documents travel as files: each service writes its generated document to
//! `shared/openapi/NAME.json` (committed), a test in that service fails when the file differs
//! from what its code generates ([`check_committed`]; `UPDATE_OPENAPI=1` rewrites it), and the
//! ticketing API merges the files in with `include_str!`. A route change therefore cannot
//! reach the served document without a reviewed change to the committed file.
//!
//! **Every answer the plumbing can give.** [`CommonResponses`] adds to each operation the
//! answers that come from the shared extractors and layers rather than from the handler: bad
//! JSON bodies (400/413/415/422), malformed path and query parameters (400), unknown ids that
//! reach no route (404), missing or bad access tokens (401/403), and the request timeout (408).
//! It runs on the finished document (after every route is collected), and only adds: a status
//! a handler already documents keeps its description, with the plumbing's codes appended.

use std::path::Path;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
        path::{Operation, ParameterIn},
    },
};

use crate::error::ErrorBody;

/// Adds the shared plumbing's answers to every operation (see the module doc). Apply it to
/// the document after all routes are in, e.g. `CommonResponses.apply(&mut doc)`.
#[derive(Debug, Clone, Copy)]
pub struct CommonResponses;

impl CommonResponses {
    pub fn apply(self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common(operation);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry(ErrorBody::name().into_owned())
            .or_insert_with(ErrorBody::schema);
    }
}

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        self.apply(openapi);
    }
}

fn add_common(operation: &mut Operation) {
    let located = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|parameter| {
            matches!(parameter, RefOr::T(p) if std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place))
        })
    };
    let has_path = located(ParameterIn::Path);
    let has_query = located(ParameterIn::Query);
    let has_json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.keys().any(|ct| ct.contains("json")),
            RefOr::Ref(_) => true,
        });
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());

    if has_json_body {
        ensure(operation, 400, "malformed_json", "the body is not JSON");
        ensure(operation, 413, "payload_too_large", "the body is too large");
        ensure(
            operation,
            415,
            "unsupported_media_type",
            "the body is not sent as `application/json`",
        );
        ensure(
            operation,
            422,
            "invalid_body",
            "the JSON has missing or unknown fields or wrong types",
        );
    }
    if has_json_body || has_path || has_query {
        ensure(
            operation,
            422,
            "invalid_text",
            "text with a NUL character (U+0000), which nothing stores",
        );
    }
    if has_path {
        ensure(
            operation,
            400,
            "invalid_path",
            "a path parameter is malformed",
        );
        ensure(operation, 404, "not_found", "no such resource, or no route");
    }
    if has_query {
        ensure(
            operation,
            400,
            "invalid_query",
            "the query string is malformed",
        );
    }
    if secured {
        for code in ["unauthorized", "invalid_token", "token_expired"] {
            ensure(
                operation,
                401,
                code,
                "no valid `Authorization: Bearer <access token>`",
            );
        }
        ensure(operation, 403, "banned", "the account is banned");
    }
    ensure(operation, 408, "timeout", "the request took too long");
}

/// Makes sure `operation` documents `status` with the error `code`: a new JSON error response,
/// or the code appended to the description of the one already there.
fn ensure(operation: &mut Operation, status: u16, code: &str, meaning: &str) {
    let key = status.to_string();
    let mention = format!("`{code}`");
    match operation.responses.responses.get_mut(&key) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(&mention) {
                if response.description.trim().is_empty() {
                    response.description = mention;
                } else {
                    response.description = format!("{}; {mention}", response.description);
                }
            }
            if response.content.is_empty() {
                response
                    .content
                    .insert("application/json".into(), error_content().into());
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(format!("{mention}: {meaning}"))
                .content("application/json", error_content())
                .build();
            operation
                .responses
                .responses
                .insert(key, RefOr::T(response));
        }
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
        .build()
}

/// The committed copy of a service's document at `path` is `document` (pretty JSON with a
/// final newline); with `UPDATE_OPENAPI=1` in the environment the file is rewritten instead.
/// Each service calls this from a test, so a route change that is not committed fails CI.
pub fn check_committed(document: &OpenApi, path: &Path) -> Result<(), String> {
    let mut generated = document
        .to_pretty_json()
        .map_err(|err| format!("cannot render the document: {err}"))?;
    generated.push('\n');
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        return std::fs::write(path, &generated)
            .map_err(|err| format!("cannot write {}: {err}", path.display()));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        Ok(())
    } else {
        Err(format!(
            "{} is not what the code generates; run the test again with UPDATE_OPENAPI=1 and commit the file",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::{
        HttpMethod, OpenApiBuilder, PathItem, Paths, ResponseBuilder,
        path::{OperationBuilder, ParameterBuilder},
        request_body::RequestBodyBuilder,
        security::SecurityRequirement,
    };

    use super::*;

    fn statuses(doc: &OpenApi, path: &str) -> Vec<(String, String)> {
        let operation = doc.paths.paths[path].post.as_ref().expect("a POST");
        operation
            .responses
            .responses
            .iter()
            .map(|(status, response)| match response {
                RefOr::T(r) => (status.clone(), r.description.clone()),
                RefOr::Ref(_) => (status.clone(), String::new()),
            })
            .collect()
    }

    #[test]
    fn an_operation_documents_every_answer_the_extractors_and_layers_can_give() {
        let secured_with_body = OperationBuilder::new()
            .parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path),
            )
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            ))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("422", ResponseBuilder::new().description("`invalid_field`"));
        let public = OperationBuilder::new();
        let mut doc = OpenApiBuilder::new()
            .paths(
                Paths::builder()
                    .path(
                        "/a/{id}",
                        PathItem::new(HttpMethod::Post, secured_with_body),
                    )
                    .path("/b", PathItem::new(HttpMethod::Post, public)),
            )
            .build();
        CommonResponses.apply(&mut doc);

        let a = statuses(&doc, "/a/{id}");
        let codes: Vec<&str> = a.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            codes,
            ["400", "401", "403", "404", "408", "413", "415", "422"]
        );
        let described = |status: &str| &a.iter().find(|(s, _)| s == status).expect("documented").1;
        assert!(described("400").contains("`malformed_json`"));
        assert!(described("400").contains("`invalid_path`"));
        assert!(described("401").contains("`token_expired`"));
        assert_eq!(
            described("422"),
            "`invalid_field`; `invalid_body`; `invalid_text`"
        );

        let b = statuses(&doc, "/b");
        assert_eq!(
            b.len(),
            1,
            "a public operation without input can only time out: {b:?}"
        );
        assert!(
            doc.components
                .expect("components")
                .schemas
                .contains_key("ErrorBody")
        );
    }
}
