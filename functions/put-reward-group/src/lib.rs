//! `PutRewardGroup` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::admin_groups::{GroupChange, PutRewardGroup};
use market_domain::processors::Processor;
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{PutRewardGroupRequest, RewardGroup};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: PutRewardGroup<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn put_reward_group(&self, request: Request<PutRewardGroupRequest>) -> Result<Response<RewardGroup>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let body = request.into_inner();
        let (name, rules, description) = market_proto::rules::group_from_proto(body.group.as_ref()).map_err(to_status)?;
        let change = GroupChange { name, rules, description, expected_version: body.expected_version };
        let group = self.processor.process(AdminRequest { admin, request_id, body: change }).await.map_err(to_status)?;
        Ok(Response::new(market_proto::rules::group_to_proto(&group)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: PutRewardGroup(deps), auth })
}
