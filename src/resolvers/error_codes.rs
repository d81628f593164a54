//! Parse, validation and limit errors come from async-graphql without a code; they are the
//! client's to fix, so they get BAD_USER_INPUT. Errors that already carry a code keep it.

use async_graphql::{Response, ServerError};

use crate::error::ErrorCode;

pub(super) fn with_codes(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(ensure_code);
    response
}

fn ensure_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", ErrorCode::BadUserInput.as_str());
    }
}
