//! The notifier's OpenAPI document is committed as `shared/openapi/notifier.json`, from where
//! the ticketing API merges it into the gateway-wide document (see `shared::openapi`).

use std::path::Path;

#[test]
fn the_committed_openapi_document_is_what_the_code_generates() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openapi/notifier.json");
    if let Err(problem) = shared::openapi::check_committed(&notifier::openapi(), &file) {
        panic!("{problem}");
    }
}
