//! `ListRewardGroups` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin_groups::ListRewardGroups;
use market_domain::processors::Processor;
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ListRewardGroupsRequest, ListRewardGroupsResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListRewardGroups<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn list_reward_groups(&self, request: Request<ListRewardGroupsRequest>) -> Result<Response<ListRewardGroupsResponse>, Status> {
        let _admin = self.auth.admin(&request)?;
        let groups = self.processor.process(()).await.map_err(to_status)?;
        Ok(Response::new(ListRewardGroupsResponse { groups: groups.iter().map(market_proto::rules::group_to_proto).collect() }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ListRewardGroups(deps), auth })
}
