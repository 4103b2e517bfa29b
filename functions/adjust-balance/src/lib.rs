//! `AdjustBalance` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::model::LedgerEntry;
use market_domain::money::Money;
use market_domain::processors::{AdjustBalance, Adjustment, Processor};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{AdjustBalanceRequest, AdjustBalanceResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: AdjustBalance<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn adjust_balance(&self, request: Request<AdjustBalanceRequest>) -> Result<Response<AdjustBalanceResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let body = Adjustment {
            user: UserId::parse(b.user_id).map_err(to_status)?,
            amount: Money::from_minor(b.amount),
            reason: b.reason,
            idempotency_key: IdempotencyKey::parse(b.idempotency_key).map_err(to_status)?,
            allow_negative: b.allow_negative,
        };
        let result = self.processor.process(AdminRequest { admin, request_id, body }).await;
        market_lambda::metrics::result(market_lambda::metrics::names::ADJUSTMENTS, &result, |r| if r.replayed { "replayed" } else { "adjusted" });
        let result = result.map_err(to_status)?;
        let LedgerEntry::Adjustment { adjustment_id, amount, available_after, at, .. } = result.entry else {
            return Err(Status::internal("internal error"));
        };
        Ok(Response::new(AdjustBalanceResponse {
            adjustment_id: adjustment_id.to_string(),
            amount: amount.minor(),
            available_after: available_after.minor(),
            at: Some(market_proto::timestamp(at)),
            replayed: result.replayed,
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: AdjustBalance(deps), auth })
}
