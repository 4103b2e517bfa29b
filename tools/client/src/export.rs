//! A user's personal-data export as one JSON document, written as its pages arrive (the
//! `ExportUserData` RPC, every page): `{"user_id": ..., "records": [{"section": ...,
//! "record": {...}}, ...]}`, records in section order (see the RPC's documentation).

use std::io::Write;

use market_proto::v1::ExportUserDataRequest;

use crate::rpc::{BoxError, Rpc};

/// Writes the export of `user` to `out`; returns how many records it held.
pub async fn export_user_data(rpc: &Rpc, admin_token: &str, user: &str, out: &mut impl Write) -> Result<usize, BoxError> {
    let mut admin = rpc.admin();
    write!(out, "{{\"user_id\":{},\"records\":[", serde_json::to_string(user)?)?;
    let (mut count, mut page_token) = (0usize, String::new());
    loop {
        let request = ExportUserDataRequest { user_id: user.to_owned(), page_token };
        let page = admin.export_user_data(Rpc::authed(request, admin_token)).await?.into_inner();
        for r in page.records {
            let record: serde_json::Value = serde_json::from_str(&r.json)?;
            let line = serde_json::json!({"section": r.section, "record": record});
            write!(out, "{}\n{}", if count == 0 { "" } else { "," }, line)?;
            count += 1;
        }
        out.flush()?;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    writeln!(out, "]}}")?;
    Ok(count)
}
