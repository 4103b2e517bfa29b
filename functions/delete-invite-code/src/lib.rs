//! `DeleteInviteCode` handler: authenticate, run the processor, map the result.

use market_domain::ports::Deactivation;
use market_domain::processors::{DeleteInviteCode, DeleteInviteCodeRequest as Delete, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{DeleteInviteCodeRequest, DeleteInviteCodeResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: DeleteInviteCode<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn delete_invite_code(
        &self,
        request: Request<DeleteInviteCodeRequest>,
    ) -> Result<Response<DeleteInviteCodeResponse>, Status> {
        let caller = self.auth.caller(&request)?;
        let code = request.into_inner().code;
        let outcome = self.processor.process(Delete { caller, code }).await;
        market_lambda::metrics::result(market_lambda::metrics::names::CODES_DELETED, &outcome, |o| {
            if *o == Deactivation::AlreadyInactive { "already_inactive" } else { "deleted" }
        });
        let outcome = outcome.map_err(to_status)?;
        Ok(Response::new(DeleteInviteCodeResponse { already_inactive: outcome == Deactivation::AlreadyInactive }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: DeleteInviteCode(deps), auth })
}
