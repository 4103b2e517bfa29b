//! `ListRewardHistory` handler: authenticate, list the caller's own history, map it.

use market_domain::admin::ListRequest;
use market_domain::processors::{ListRewardHistory, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{ListRewardHistoryRequest, ListRewardHistoryResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListRewardHistory<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn list_reward_history(
        &self,
        request: Request<ListRewardHistoryRequest>,
    ) -> Result<Response<ListRewardHistoryResponse>, Status> {
        let caller = self.auth.caller(&request)?;
        let body = request.into_inner();
        let page_token = Some(body.page_token).filter(|t| !t.is_empty());
        // The page token is bound to the caller: another user's token is INVALID_ARGUMENT.
        let result =
            self.processor.process(ListRequest { of: caller, page_size: body.page_size, page_token }).await.map_err(to_status)?;
        Ok(Response::new(ListRewardHistoryResponse {
            entries: result.page.items.iter().filter_map(|i| market_proto::history::history_entry(i, result.now)).collect(),
            next_page_token: result.page.next.unwrap_or_default(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: ListRewardHistory(deps), auth })
}
