//! GraphQL (placeholder until the schema lands).

use axum::Router;

use crate::state::ApiState;

pub fn router(_state: &ApiState) -> Router<ApiState> {
    Router::new()
}
