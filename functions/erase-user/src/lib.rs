//! `EraseUser` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::ids::UserId;
use market_domain::processors::{EraseRequest, EraseUser, Processor};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{EraseUserRequest, EraseUserResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: EraseUser<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn erase_user(&self, request: Request<EraseUserRequest>) -> Result<Response<EraseUserResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let body = EraseRequest { user: UserId::parse(b.user_id).map_err(to_status)?, forfeit_balance: b.forfeit_balance };
        let r = self.processor.process(AdminRequest { admin, request_id, body }).await.map_err(to_status)?;
        Ok(Response::new(EraseUserResponse {
            pseudonym: r.pseudonym.to_string(),
            moved: r.erased.moved as u64,
            rewritten: r.erased.rewritten as u64,
            forfeited: r.forfeited.minor(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED); `deps` carry
/// the erasure key (`Market::init` with `ERASURE_KEY_SECRET_ARN`).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: EraseUser(deps), auth })
}
