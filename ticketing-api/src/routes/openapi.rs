//! The document served at `GET /api/openapi.json`: every public endpoint behind the gateway.
//!
//! The ticketing API's own routes come from their `#[utoipa::path]` annotations, completed by
//! `shared::openapi::CommonResponses` (the answers of the shared extractors and layers). The
//! waiting room's (`/api/queue/...`) and the notifier's (`/ws`) come from the documents those
//! services commit under `shared/openapi/`: services never import each other, and a test in
//! each of them fails when its committed file falls behind its code, so the merged document
//! is as current as the code that is deployed with it. Schemas of the same name must be the
//! same schema (`ErrorBody`); a test here checks it, because the merge keeps the first.

use utoipa::openapi::OpenApi;

/// The other services' documents, as committed (paths are already absolute: `/api/queue/...`,
/// `/ws`).
const OTHER_SERVICES: [(&str, &str); 2] = [
    (
        "waiting-room",
        include_str!("../../../shared/openapi/waiting-room.json"),
    ),
    (
        "notifier",
        include_str!("../../../shared/openapi/notifier.json"),
    ),
];

/// `own` (this service's document) with the other services' paths, schemas and tags merged in.
pub fn gateway_document(mut own: OpenApi) -> OpenApi {
    for (_, other) in other_documents() {
        own.merge(other);
    }
    own
}

fn other_documents() -> impl Iterator<Item = (&'static str, OpenApi)> {
    OTHER_SERVICES.iter().map(|(name, json)| {
        let doc = serde_json::from_str(json)
            .expect("the committed documents parse (the tests of their services write them)");
        (*name, doc)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_describes_the_waiting_room_and_the_notifier() {
        let doc = gateway_document(super::super::api().1);
        for path in [
            "/api/events/{id}",
            "/api/queue/{event_id}/join",
            "/api/queue/{event_id}/status",
            "/api/queue/{event_id}/events",
            "/ws",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} is missing");
        }
    }

    #[test]
    fn schemas_of_the_same_name_are_the_same_schema_in_every_service() {
        let (_, own) = super::super::api();
        let own_schemas = own.components.unwrap_or_default().schemas;
        for (service, other) in other_documents() {
            for (name, schema) in other.components.unwrap_or_default().schemas {
                if let Some(ours) = own_schemas.get(&name) {
                    assert_eq!(
                        serde_json::to_value(ours).expect("a schema serializes"),
                        serde_json::to_value(&schema).expect("a schema serializes"),
                        "schema {name} differs between the ticketing API and the {service}"
                    );
                }
            }
        }
    }
}
