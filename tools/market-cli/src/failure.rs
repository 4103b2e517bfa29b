//! What a command fails with, and a gRPC status in words.

/// What a command failed with: a usage problem (exit 2) or a failed call (exit 1).
pub enum Failure {
    Usage(String),
    Call(String),
}

pub fn status_text(status: &tonic::Status) -> String {
    use tonic::Code;
    let what = match status.code() {
        Code::InvalidArgument => "invalid request",
        Code::FailedPrecondition => "refused",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::ResourceExhausted => "limit reached",
        Code::Unauthenticated => "not signed in (the token is missing, invalid or expired)",
        Code::PermissionDenied => "not allowed (an administrator's token is needed)",
        Code::Unavailable | Code::DeadlineExceeded => "unavailable, try again",
        Code::Unimplemented => "not available on this deployment",
        Code::Internal | Code::DataLoss => "failed on the server",
        _ => "request failed",
    };
    format!("{what}: {}", status.message())
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Failure::Call(status_text(&status))
    }
}
