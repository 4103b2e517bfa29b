//! `ExportUserData` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::AdminRequest;
use market_domain::ids::UserId;
use market_domain::processors::{ExportRequest, ExportUserData, Processor};
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{DataRecord, ExportUserDataRequest, ExportUserDataResponse};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: ExportUserData<Store, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn export_user_data(&self, request: Request<ExportUserDataRequest>) -> Result<Response<ExportUserDataResponse>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let b = request.into_inner();
        let user = UserId::parse(b.user_id).map_err(to_status)?;
        let page_token = Some(b.page_token).filter(|t| !t.is_empty());
        let page = self.processor.process(AdminRequest { admin, request_id, body: ExportRequest { user, page_token } }).await.map_err(to_status)?;
        Ok(Response::new(ExportUserDataResponse {
            records: page.items.iter().map(|r| DataRecord { section: r.section.as_str().to_owned(), json: r.record.to_string() }).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: ExportUserData(deps), auth })
}
