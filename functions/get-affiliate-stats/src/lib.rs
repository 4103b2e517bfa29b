//! `GetAffiliateStats` handler: authenticate, run the processor, map the result.

use market_domain::processors::{GetAffiliateStats, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{GetAffiliateStatsRequest, GetAffiliateStatsResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: GetAffiliateStats<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn get_affiliate_stats(
        &self,
        request: Request<GetAffiliateStatsRequest>,
    ) -> Result<Response<GetAffiliateStatsResponse>, Status> {
        let caller = self.auth.caller(&request)?;
        let overview = self.processor.process(caller).await.map_err(to_status)?;
        Ok(Response::new(GetAffiliateStatsResponse {
            stats: Some(market_proto::v1::AffiliateStats {
                next_release_at: overview.next_release_at.map(market_proto::timestamp),
                ..market_proto::stats(&overview.stats, &overview.currency)
            }),
            policy: Some((&overview.policy).into()),
            codes: overview.codes.iter().map(Into::into).collect(),
            min_withdraw_amount: overview.min_withdraw_amount.minor(),
            group: Some(market_proto::rules::affiliate_group(&overview.group, overview.own_bps, overview.performance, &overview.tier)),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: GetAffiliateStats(deps), auth })
}
