//! `GetMarketConfig` (admin) handler: require the admin claim, run the processor, map the result.

use market_domain::admin::{ConfigDeps, GetMarketConfig};
use market_domain::processors::Processor;
use market_lambda::{to_status, Authenticator, Config, MarketDeps, Store};
use market_proto::v1::market_admin_service_server::{MarketAdminService, MarketAdminServiceServer};
use market_proto::v1::{GetMarketConfigRequest, MarketConfig};
use tonic::{Request, Response, Status};

pub struct Rpc {
    processor: GetMarketConfig<Store, Config, Config>,
    auth: Authenticator,
}

#[tonic::async_trait]
impl MarketAdminService for Rpc {
    async fn get_market_config(&self, request: Request<GetMarketConfigRequest>) -> Result<Response<MarketConfig>, Status> {
        let _admin = self.auth.admin(&request)?;
        let config = self.processor.process(()).await.map_err(to_status)?;
        Ok(Response::new(market_proto::admin::market_config(&config)))
    }
}

/// The service this function serves (its other methods answer UNIMPLEMENTED).
pub fn service(deps: MarketDeps, auth: Authenticator) -> MarketAdminServiceServer<Rpc> {
    MarketAdminServiceServer::new(Rpc { processor: GetMarketConfig(ConfigDeps { configs: deps.config.clone(), deps }), auth })
}
