//! Why a code gave no referral at registration (stored on the user's policy, so a retry of
//! the registration answers as the first delivery did).

/// Why a registration did not record a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralRejection {
    InvalidCode,
    UnknownCode,
    InactiveCode,
    ExpiredCode,
    SelfReferral,
    InviterDisabled,
    AlreadyRegistered,
}

impl ReferralRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralRejection::InvalidCode => "invalid_code",
            ReferralRejection::UnknownCode => "unknown_code",
            ReferralRejection::InactiveCode => "inactive_code",
            ReferralRejection::ExpiredCode => "expired_code",
            ReferralRejection::SelfReferral => "self_referral",
            ReferralRejection::InviterDisabled => "inviter_disabled",
            ReferralRejection::AlreadyRegistered => "already_registered",
        }
    }
}
