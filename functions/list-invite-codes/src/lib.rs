//! `ListInviteCodes` handler: authenticate, run the processor, map the result.

use market_domain::processors::{ListInviteCodes, Processor};
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_service_server::{MarketService, MarketServiceServer};
use market_proto::v1::{ListInviteCodesRequest, ListInviteCodesResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListInviteCodes<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketService for Rpc {
    async fn list_invite_codes(
        &self,
        request: Request<ListInviteCodesRequest>,
    ) -> Result<Response<ListInviteCodesResponse>, Status> {
        let caller = self.auth.caller(&request)?;
        let codes = self.processor.process(caller).await.map_err(to_status)?;
        Ok(Response::new(ListInviteCodesResponse { codes: codes.iter().map(Into::into).collect() }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketServiceServer<Rpc> {
    MarketServiceServer::new(Rpc { processor: ListInviteCodes(deps), auth })
}
