//! `ListAuditTrail` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::{ListAuditTrail, ListRequest, TrailOf};
use market_domain::ids::UserId;
use market_domain::MarketError;
use market_domain::processors::Processor;
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{ListAuditTrailRequest, ListAuditTrailResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ListAuditTrail<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn list_audit_trail(&self, request: Request<ListAuditTrailRequest>) -> Result<Response<ListAuditTrailResponse>, Status> {
        let _admin = self.auth.admin(&request)?;
        let body = request.into_inner();
        let of = match (body.market_config, body.user_id.is_empty()) {
            (true, true) => TrailOf::MarketConfig,
            (true, false) => return Err(to_status(MarketError::InvalidArgument("user_id must be empty with market_config".into()))),
            (false, _) => TrailOf::User(UserId::parse(body.user_id).map_err(to_status)?),
        };
        let page_token = Some(body.page_token).filter(|t| !t.is_empty());
        let page = self.processor.process(ListRequest { of, page_size: body.page_size, page_token }).await.map_err(to_status)?;
        Ok(Response::new(ListAuditTrailResponse {
            records: page.items.iter().map(market_proto::admin::audit_record).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ListAuditTrail(deps), auth })
}
