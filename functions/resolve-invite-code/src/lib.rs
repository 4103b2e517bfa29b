//! `ResolveInviteCode` handler (public: no token): the caller's address, the processor,
//! the answer. Limited per address in the processor; API Gateway throttles the route.

use market_domain::processors::{Processor, ResolveInviteCode, ResolveRequest};
use market_lambda::{caller_address, to_status, Config, MarketDeps, Store};
use market_proto::v1::public_service_server::{PublicService, PublicServiceServer};
use market_proto::v1::{ResolveInviteCodeRequest, ResolveInviteCodeResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ResolveInviteCode<Store, Config, market_config::RedisLimiter>,
}

#[tonic::async_trait]
impl PublicService for Rpc {
    async fn resolve_invite_code(
        &self,
        request: Request<ResolveInviteCodeRequest>,
    ) -> Result<Response<ResolveInviteCodeResponse>, Status> {
        let address = caller_address(&request);
        let code = request.into_inner().code;
        let usable = self.processor.process(ResolveRequest { code, address }).await.map_err(to_status)?;
        Ok(Response::new(ResolveInviteCodeResponse { usable }))
    }
}

/// The service this function serves.
pub fn service(deps: MarketDeps) -> PublicServiceServer<Rpc> {
    let limiter = std::sync::Arc::new(deps.config.limiter());
    PublicServiceServer::new(Rpc { processor: ResolveInviteCode { deps, limiter } })
}
