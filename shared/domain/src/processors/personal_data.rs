//! Personal-data requests (admin): a user's export (GDPR art. 15). The transport checks the
//! admin claim; the export is audited on the user when it starts (its first page).

use serde_json::json;
use tracing::info;

use crate::admin::AdminRequest;
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::ids::UserId;
use crate::personal_data::DataRecord;
use crate::ports::{ConfigSource, MarketStore, Page};

use super::{Deps, Processor};

/// Records of each section per export page (nine sections: at most 450 records, typically
/// under 2 KB each: far below a Lambda response's 6 MB).
pub const EXPORT_RECORDS_PER_SECTION: u32 = 50;

pub struct ExportRequest {
    pub user: UserId,
    pub page_token: Option<String>,
}

/// One page of everything stored about a user.
pub struct ExportUserData<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ExportUserData<S, C> {
    type Request = AdminRequest<ExportRequest>;
    type Response = Page<DataRecord>;

    async fn process(&self, req: AdminRequest<ExportRequest>) -> Result<Page<DataRecord>, MarketError> {
        let d = &self.0;
        let r = &req.body;
        if r.page_token.is_none() {
            // Who read whose data, when: on the user's own trail (written before the first
            // page is read, so the export holds it).
            let now = d.clock.now();
            let record = AuditRecord::new(&r.user, now, AuditAction::DataExported, Actor::Admin(req.admin.clone()), &req.request_id, json!({}));
            d.store.put_audit(&record).await?;
            info!(admin = %req.admin, user_id = %r.user, "personal data export started");
        }
        d.store.personal_data(&r.user, r.page_token.as_deref(), EXPORT_RECORDS_PER_SECTION).await
    }
}
