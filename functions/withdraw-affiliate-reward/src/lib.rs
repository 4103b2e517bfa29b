//! `WithdrawAffiliateReward` handler: authenticate, run the processor, map the result.

use market_domain::ids::IdempotencyKey;
use market_domain::money::Money;
use market_domain::processors::{Processor, WithdrawAffiliateReward, WithdrawRequest};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{WithdrawAffiliateRewardRequest, WithdrawAffiliateRewardResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: WithdrawAffiliateReward<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn withdraw_affiliate_reward(
        &self,
        request: Request<WithdrawAffiliateRewardRequest>,
    ) -> Result<Response<WithdrawAffiliateRewardResponse>, Status> {
        let caller = self.auth.caller(&request)?;
        let body = request.into_inner();
        let idempotency_key = IdempotencyKey::parse(body.idempotency_key).map_err(to_status)?;
        let result = self.processor.process(WithdrawRequest { caller, amount: Money::from_minor(body.amount), idempotency_key }).await;
        market_lambda::metrics::withdrawal(result.as_ref().map(|r| (r.record.amount.minor(), r.replayed)));
        let result = result.map_err(to_status)?;
        Ok(Response::new(market_proto::withdrawal(&result.record, result.replayed)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: WithdrawAffiliateReward(deps), auth })
}
