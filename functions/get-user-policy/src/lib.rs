//! `GetUserPolicy` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::GetUserPolicy;
use market_domain::ids::UserId;
use market_domain::processors::Processor;
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{GetUserPolicyRequest, UserPolicy};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: GetUserPolicy<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn get_user_policy(&self, request: Request<GetUserPolicyRequest>) -> Result<Response<UserPolicy>, Status> {
        let _admin = self.auth.admin(&request)?;
        let user = UserId::parse(request.into_inner().user_id).map_err(to_status)?;
        let view = self.processor.process(user).await.map_err(to_status)?;
        Ok(Response::new(market_proto::admin::user_policy(&view)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: GetUserPolicy(deps), auth })
}
