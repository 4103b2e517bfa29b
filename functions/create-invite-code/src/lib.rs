//! `CreateInviteCode` handler: authenticate, run the processor, map the result.

use market_domain::ids::IdempotencyKey;
use market_domain::processors::{CreateInviteCode, NewCodeRequest, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{CreateInviteCodeRequest, CreateInviteCodeResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: CreateInviteCode<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn create_invite_code(
        &self,
        request: Request<CreateInviteCodeRequest>,
    ) -> Result<Response<CreateInviteCodeResponse>, Status> {
        let owner = self.auth.caller(&request)?;
        let key = request.into_inner().idempotency_key;
        // Empty = no key (proto3 default); otherwise it must be a valid key.
        let idempotency_key = (!key.is_empty()).then(|| IdempotencyKey::parse(key)).transpose().map_err(to_status)?;
        let record = self.processor.process(NewCodeRequest { owner, idempotency_key }).await;
        market_lambda::metrics::result(market_lambda::metrics::names::CODES_CREATED, &record, |_| "created");
        let record = record.map_err(to_status)?;
        Ok(Response::new(CreateInviteCodeResponse { code: Some((&record).into()) }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: CreateInviteCode::new(deps), auth })
}
