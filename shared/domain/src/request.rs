//! What an admin's call carries below the processors that take it: who asks, under which
//! request id, what; and a listing's page.

use crate::error::MarketError;
use crate::ids::UserId;

/// An admin's request: who, under which request id, what.
pub struct AdminRequest<T> {
    pub admin: UserId,
    pub request_id: String,
    pub body: T,
}

pub const DEFAULT_PAGE_SIZE: u32 = 25;
pub const MAX_PAGE_SIZE: u32 = 100;

pub struct ListRequest<T> {
    pub of: T,
    pub page_size: u32,
    pub page_token: Option<String>,
}

pub(crate) fn page_size(requested: u32) -> Result<u32, MarketError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n <= MAX_PAGE_SIZE => Ok(n),
        _ => Err(MarketError::InvalidArgument(format!("page_size must be at most {MAX_PAGE_SIZE}"))),
    }
}
