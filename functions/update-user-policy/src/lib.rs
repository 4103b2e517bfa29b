//! `UpdateUserPolicy` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::{AdminRequest, PolicyChange, UpdateUserPolicy};
use market_domain::ids::UserId;
use market_domain::processors::Processor;
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{UpdateUserPolicyRequest, UserPolicy};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: UpdateUserPolicy<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn update_user_policy(&self, request: Request<UpdateUserPolicyRequest>) -> Result<Response<UserPolicy>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let body = request.into_inner();
        let user = UserId::parse(body.user_id).map_err(to_status)?;
        let (values, fields) = market_proto::admin::policy_change(body.overrides.as_ref(), &body.update).map_err(to_status)?;
        let change = AdminRequest { admin, request_id, body: PolicyChange { user, values, fields } };
        let view = self.processor.process(change).await.map_err(to_status)?;
        Ok(Response::new(market_proto::admin::user_policy(&view)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: UpdateUserPolicy(deps), auth })
}
