//! `ListHeldRewards` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::processors::{HeldPageRequest, ListHeldRewards, Processor};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ListHeldRewardsRequest, ListHeldRewardsResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListHeldRewards<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn list_held_rewards(&self, request: Request<ListHeldRewardsRequest>) -> Result<Response<ListHeldRewardsResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let body = HeldPageRequest { page_size: b.page_size, page_token: Some(b.page_token).filter(|t| !t.is_empty()) };
        let result = self.processor.process(AdminRequest { admin, request_id, body }).await.map_err(to_status)?;
        Ok(Response::new(ListHeldRewardsResponse {
            rewards: result.page.items.iter().filter_map(|c| market_proto::admin::held_reward(c, result.now)).collect(),
            next_page_token: result.page.next.unwrap_or_default(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ListHeldRewards(deps), auth })
}
