//! prost's codec, except that a request that does not decode is `INVALID_ARGUMENT`
//! (tonic reports decode failures as `INTERNAL`, which would blame the server).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct StrictDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(src).map(Some).map_err(|_| Status::invalid_argument("malformed request message"))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use proptest::prelude::*;

    use crate::v1;

    fn decodes<M: Message + Default>(bytes: &[u8]) {
        let _ = M::decode(bytes);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// Every request message of both services from arbitrary bytes: decoded or refused
        /// (the codec maps the refusal to INVALID_ARGUMENT), never a panic.
        #[test]
        fn fuzz_request_messages(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            decodes::<v1::GetAffiliateStatsRequest>(&bytes);
            decodes::<v1::ListInviteCodesRequest>(&bytes);
            decodes::<v1::CreateInviteCodeRequest>(&bytes);
            decodes::<v1::DeleteInviteCodeRequest>(&bytes);
            decodes::<v1::WithdrawAffiliateRewardRequest>(&bytes);
            decodes::<v1::ListRewardHistoryRequest>(&bytes);
            decodes::<v1::GetUserPolicyRequest>(&bytes);
            decodes::<v1::UpdateUserPolicyRequest>(&bytes);
            decodes::<v1::GetMarketConfigRequest>(&bytes);
            decodes::<v1::UpdateMarketConfigRequest>(&bytes);
            decodes::<v1::ListLedgerRequest>(&bytes);
            decodes::<v1::ListAuditTrailRequest>(&bytes);
            decodes::<v1::AdjustBalanceRequest>(&bytes);
            decodes::<v1::ReverseRewardRequest>(&bytes);
            decodes::<v1::ExportUserDataRequest>(&bytes);
            decodes::<v1::EraseUserRequest>(&bytes);
        }

        /// Structured admin changes: any values, any field names -> a change or a typed
        /// InvalidArgument.
        #[test]
        fn fuzz_admin_changes(bps in proptest::option::of(any::<u32>()), count in any::<u32>(), unlimited in any::<bool>(), codes in proptest::option::of(any::<u32>()),
                              fields in proptest::collection::vec(prop_oneof![Just("commission_bps".to_owned()), Just("trigger_limit".to_owned()),
                                   Just("max_active_codes".to_owned()), Just("currency".to_owned()), Just("holding_period_days".to_owned()), ".{0,12}"], 0..5),
                              currency in ".{0,4}", holding in any::<u32>()) {
            use market_domain::MarketError;
            let limit = Some(v1::TriggerLimit { limit: Some(if unlimited { v1::trigger_limit::Limit::Unlimited(true) } else { v1::trigger_limit::Limit::Count(count) }) });
            let o = v1::PolicyOverrides { commission_bps: bps, trigger_limit: limit, max_active_codes: codes, affiliate_enabled: None, group: None };
            let r = crate::admin::policy_change(Some(&o), &fields);
            prop_assert!(r.is_ok() || matches!(r, Err(MarketError::InvalidArgument(_))));
            let c = v1::MarketConfig { default_commission_bps: bps.unwrap_or(0), default_trigger_limit: limit, currency, holding_period_days: holding, ..Default::default() };
            let r = crate::admin::config_change(Some(&c), &fields);
            prop_assert!(r.is_ok() || matches!(r, Err(MarketError::InvalidArgument(_))));
        }
    }
}
