//! `market-cli dlq list|show|redrive|delete QUEUE`: the command around the SQS mechanics of
//! [`crate::dlq`], rendered as tables or JSON.

use crate::failure::Failure;
use crate::views::View;
use crate::{dlq, emit, render, stack, DlqCommand};

pub async fn dead_letters(json: bool, outputs: Option<&str>, command: DlqCommand) -> Result<(), Failure> {
    let name = match &command {
        DlqCommand::List { queue } | DlqCommand::Show { queue, .. } | DlqCommand::Redrive { queue, .. } | DlqCommand::Delete { queue, .. } => queue.clone(),
    };
    let names = dlq::DEAD_LETTER_QUEUES.map(|(id, _)| id).join(", ");
    let (logical_id, source) = dlq::dead_letter_queue(&name).ok_or_else(|| Failure::Usage(format!("unknown dead-letter queue {name:?}; one of {names}")))?;
    let urls = stack::queue_urls(outputs)?;
    let url = urls.url(logical_id).map_err(Failure::Usage)?.to_owned();
    let sqs = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    match command {
        DlqCommand::List { .. } => {
            let messages = dlq::peek(&sqs, &url).await.map_err(Failure::Call)?;
            let described: Vec<serde_json::Value> = messages.iter().map(|m| dlq::describe(logical_id, m, true)).collect();
            let rows: Vec<Vec<String>> = described
                .iter()
                .map(|d| {
                    let s = |k: &str| d[k].as_str().map(str::to_owned).unwrap_or_else(|| d[k].to_string());
                    vec![s("message_id"), s("receive_count"), s("sent_at"), s("reason")]
                })
                .collect();
            let text = format!("{logical_id}: {} message(s)\n{}", described.len(), render::table(&["MESSAGE ID", "RECEIVES", "SENT", "REASON"], &rows));
            emit(json, View { json: serde_json::json!({"queue": logical_id, "messages": described}), text });
        }
        DlqCommand::Show { message_id, .. } => {
            let messages = dlq::peek(&sqs, &url).await.map_err(Failure::Call)?;
            let message = messages.iter().find(|m| m.message_id() == Some(message_id.as_str())).ok_or_else(|| Failure::Call(format!("no message {message_id} in {logical_id}")))?;
            let view = dlq::describe(logical_id, message, true);
            let text = serde_json::to_string_pretty(&view).unwrap_or_default();
            emit(json, View { json: view, text });
        }
        DlqCommand::Delete { message_id, .. } => {
            let deleted = dlq::delete(&sqs, &url, &message_id).await.map_err(Failure::Call)?;
            if !deleted {
                return Err(Failure::Call(format!("no message {message_id} in {logical_id}")));
            }
            emit(json, View { json: serde_json::json!({"queue": logical_id, "deleted": message_id}), text: format!("deleted {message_id} from {logical_id}") });
        }
        DlqCommand::Redrive { ids, max, .. } => {
            let source = source.ok_or_else(|| {
                Failure::Usage(format!("{logical_id} is the outbox stream's failure destination: the records stay in the outbox table; see the runbook"))
            })?;
            let source_url = urls.url(source).map_err(Failure::Usage)?.to_owned();
            let moved = dlq::redrive(&sqs, &url, &source_url, &ids, max).await.map_err(Failure::Call)?;
            let text = format!("redrove {} message(s) from {logical_id} to {source}", moved.len());
            emit(json, View { json: serde_json::json!({"queue": logical_id, "to": source, "redriven": moved}), text });
        }
    }
    Ok(())
}
