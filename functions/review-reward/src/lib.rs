//! `ReviewReward` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::ids::{OrderId, UserId};
use market_domain::processors::{Processor, ReviewRequest, ReviewReward};
use market_lambda::metrics::{names, result as count};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ReviewRewardRequest, ReviewRewardResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ReviewReward<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn review_reward(&self, request: Request<ReviewRewardRequest>) -> Result<Response<ReviewRewardResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let body = ReviewRequest {
            user: UserId::parse(b.user_id).map_err(to_status)?,
            order_id: OrderId::parse(b.order_id).map_err(to_status)?,
            approve: b.approve,
            note: b.reason,
        };
        let result = self.processor.process(AdminRequest { admin, request_id, body }).await;
        count(names::REVIEWS, &result, |r| match (r.replayed, r.approved) {
            (true, _) => "replayed",
            (false, true) => "approved",
            (false, false) => "rejected",
        });
        let result = result.map_err(to_status)?;
        Ok(Response::new(ReviewRewardResponse {
            reward: market_proto::admin::reward_entry(&result.commission, result.now),
            approved: result.approved,
            replayed: result.replayed,
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ReviewReward(deps), auth })
}
