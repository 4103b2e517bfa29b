//! `ListLedger` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::ListRequest;
use market_domain::ids::UserId;
use market_domain::processors::{ListRewardHistory, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ListLedgerRequest, ListLedgerResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListRewardHistory<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn list_ledger(&self, request: Request<ListLedgerRequest>) -> Result<Response<ListLedgerResponse>, Status> {
        let _admin = self.auth.admin(&request)?;
        let body = request.into_inner();
        let user = UserId::parse(body.user_id).map_err(to_status)?;
        let page_token = Some(body.page_token).filter(|t| !t.is_empty());
        let result = self.processor.process(ListRequest { of: user, page_size: body.page_size, page_token }).await.map_err(to_status)?;
        Ok(Response::new(ListLedgerResponse {
            entries: result.page.items.iter().filter_map(|i| market_proto::admin::ledger_entry(i, result.now)).collect(),
            next_page_token: result.page.next.unwrap_or_default(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ListRewardHistory(deps), auth })
}
