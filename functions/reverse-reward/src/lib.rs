//! `ReverseReward` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::ids::{IdempotencyKey, OrderId, UserId};
use market_domain::processors::{Processor, ReverseRequest, ReverseReward};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ReverseRewardRequest, ReverseRewardResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ReverseReward<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn reverse_reward(&self, request: Request<ReverseRewardRequest>) -> Result<Response<ReverseRewardResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let body = ReverseRequest {
            user: UserId::parse(b.user_id).map_err(to_status)?,
            order_id: OrderId::parse(b.order_id).map_err(to_status)?,
            note: b.reason,
            idempotency_key: IdempotencyKey::parse(b.idempotency_key).map_err(to_status)?,
        };
        let result = self.processor.process(AdminRequest { admin, request_id, body }).await;
        market_lambda::metrics::result(market_lambda::metrics::names::REVERSALS, &result, |r| if r.replayed { "replayed" } else { "reversed" });
        let result = result.map_err(to_status)?;
        Ok(Response::new(ReverseRewardResponse {
            reversed: result.reversed.minor(),
            reward: market_proto::admin::reward_entry(&result.commission, result.now),
            replayed: result.replayed,
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ReverseReward(deps), auth })
}
