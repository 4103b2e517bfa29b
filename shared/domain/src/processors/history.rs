//! The affiliate's own history: their ledger newest first, each reward with its status at
//! the moment of the call.

use crate::request::{page_size, ListRequest};
use crate::error::MarketError;
use crate::model::HistoryItem;
use crate::ports::{ConfigSource, MarketStore, Page};
use crate::time::Timestamp;

use super::{Deps, Processor};

pub struct HistoryPage {
    pub page: Page<HistoryItem>,
    /// The moment statuses are computed for (`pending` until its `matures_at`).
    pub now: Timestamp,
}

/// `ListRewardHistory` (the caller's own) and admin `ListLedger` (any user's).
pub struct ListRewardHistory<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ListRewardHistory<S, C> {
    type Request = ListRequest<crate::ids::UserId>;
    type Response = HistoryPage;

    async fn process(&self, req: ListRequest<crate::ids::UserId>) -> Result<HistoryPage, MarketError> {
        let size = page_size(req.page_size)?;
        let now = self.0.clock.now();
        let page = self.0.store.list_history(&req.of, req.page_token.as_deref(), size).await?;
        Ok(HistoryPage { page, now })
    }
}
