//! The waiting room's OpenAPI document is committed as `shared/openapi/waiting-room.json`, from
//! where the ticketing API merges it into the gateway-wide document (see `shared::openapi`).

use std::path::Path;

#[test]
fn the_committed_openapi_document_is_what_the_routes_generate() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openapi/waiting-room.json");
    if let Err(problem) = shared::openapi::check_committed(&waiting_room::routes::openapi(), &file)
    {
        panic!("{problem}");
    }
}
