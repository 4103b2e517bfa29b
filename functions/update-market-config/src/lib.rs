//! `UpdateMarketConfig` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::{AdminRequest, ConfigChange, ConfigDeps, UpdateMarketConfig};
use market_domain::processors::Processor;
use market_lambda::{request_id, to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{UpdateMarketConfigRequest, MarketConfig};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: UpdateMarketConfig<Store, Config, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn update_market_config(&self, request: Request<UpdateMarketConfigRequest>) -> Result<Response<MarketConfig>, Status> {
        let admin = self.auth.admin(&request)?;
        let request_id = request_id(&request);
        let body = request.into_inner();
        let (values, fields) = market_proto::admin::config_change(body.config.as_ref(), &body.update).map_err(to_status)?;
        let change = AdminRequest { admin, request_id, body: ConfigChange { values, fields } };
        let config = self.processor.process(change).await.map_err(to_status)?;
        Ok(Response::new(market_proto::admin::market_config(&config)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: UpdateMarketConfig(ConfigDeps { configs: deps.config.clone(), deps }), auth })
}
