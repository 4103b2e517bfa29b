//! The SDK configuration of a function, from the environment Lambda sets: the region, the
//! execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), FIPS / dual-stack endpoints, and endpoint overrides
//! (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`: the local stack).
//!
//! Why not `aws_config::load`: its credential and region chains (profile files, SSO, web
//! identity through STS, ECS, IMDS) never apply in Lambda, which always hands the role's
//! credentials over in these variables, and linking them costs every function ~0.9 MiB
//! (BENCHMARKS.md, binary size). The credentials are read once: a process's environment
//! does not change, so the SDK's own environment provider would read the same values.
//! Tools and tests keep the full chains (`market_storage::aws_config`).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::Error;

/// Built once per cold start; a missing region or credentials is a start-up error that
/// names the variables.
pub fn sdk_config() -> Result<SdkConfig, Error> {
    // Locally (never set in AWS): the function signs as itself, so the local stack's AWS
    // stand-in (tools/local-aws) holds it to its own template policy.
    let local_identity = std::env::var("MARKET_LOCAL_IDENTITY").is_ok_and(|v| v == "function");
    sdk_config_from(std::env::vars().filter(|(k, v)| k.starts_with("AWS_") && !v.is_empty()).collect(), local_identity)
}

fn sdk_config_from(vars: HashMap<String, String>, local_identity: bool) -> Result<SdkConfig, Error> {
    let var = |name: &str| vars.get(name).cloned();
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).ok_or("AWS_REGION is not set")?;
    let (Some(mut key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the execution role)".into());
    };
    if local_identity {
        key = var("AWS_LAMBDA_FUNCTION_NAME").ok_or("MARKET_LOCAL_IDENTITY=function needs AWS_LAMBDA_FUNCTION_NAME")?;
    }
    let credentials = Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "LambdaEnvironment");
    let flag = |name: &str| var(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .timeout_config(market_storage::sdk_timeouts())
        .use_fips(flag("AWS_USE_FIPS_ENDPOINT"))
        .use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    // Only the endpoint variables: the credentials must not sit in a value that derives Debug.
    let endpoints = vars.into_iter().filter(|(k, _)| k.starts_with("AWS_ENDPOINT_URL_")).collect();
    Ok(builder.service_config(EnvEndpoints(endpoints)).build())
}

/// `AWS_ENDPOINT_URL_<SERVICE ID, upper case, spaces as _>`, as the SDK's own environment
/// configuration reads it (the global `AWS_ENDPOINT_URL` is the SDK config's endpoint).
/// The variables as they were at start-up: the SDK asks once per client it builds.
#[derive(Debug)]
struct EnvEndpoints(HashMap<String, String>);

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        self.0.get(&format!("{}_{}", key.env(), key.service_id().to_uppercase().replace(' ', "_"))).cloned()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::config::ProvideCredentials;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<SdkConfig, Error> {
        sdk_config_from(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), false)
    }

    #[tokio::test]
    async fn locally_a_function_signs_as_itself() {
        let mut vars: HashMap<String, String> = LAMBDA.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(sdk_config_from(vars.clone(), true).is_err(), "needs the function's name");
        vars.insert("AWS_LAMBDA_FUNCTION_NAME".into(), "on-order-paid".into());
        let c = sdk_config_from(vars, true).unwrap();
        let creds = c.credentials_provider().unwrap().provide_credentials().await.unwrap();
        assert_eq!(creds.access_key_id(), "on-order-paid");
    }

    const LAMBDA: &[(&str, &str)] =
        &[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "wJalrSECRET"), ("AWS_SESSION_TOKEN", "FwoGTOKEN")];

    #[tokio::test]
    async fn lambda_s_variables_give_region_and_credentials() {
        let c = config(LAMBDA).unwrap();
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let creds = c.credentials_provider().unwrap().provide_credentials().await.unwrap();
        assert_eq!((creds.access_key_id(), creds.secret_access_key(), creds.session_token()), ("AKID", "wJalrSECRET", Some("FwoGTOKEN")));
        assert_eq!(c.timeout_config(), Some(&market_storage::sdk_timeouts()));
        assert_eq!((c.use_fips(), c.use_dual_stack()), (Some(false), Some(false)));
        assert!(c.endpoint_url().is_none());
    }

    #[test]
    fn endpoints_per_service_then_global() {
        let mut vars = LAMBDA.to_vec();
        vars.extend([("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:2"), ("AWS_USE_FIPS_ENDPOINT", "true")]);
        let c = config(&vars).unwrap();
        let load = |service: &str| {
            let key = ServiceConfigKey::builder().service_id(service).env("AWS_ENDPOINT_URL").profile("endpoint_url").build().unwrap();
            c.service_config().unwrap().load_config(key)
        };
        assert_eq!(load("DynamoDB").as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(load("SQS"), None, "the SDK then takes the global endpoint");
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:2"));
        assert_eq!(c.use_fips(), Some(true));
        let shown = format!("{c:?}");
        assert!(!shown.contains("wJalrSECRET") && !shown.contains("FwoGTOKEN"), "no credentials in Debug: {shown}");
    }

    #[test]
    fn missing_credentials_or_region_fail_start_up_naming_the_variables() {
        let err = config(&[("AWS_REGION", "eu-west-1")]).unwrap_err().to_string();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        let err = config(&LAMBDA[1..]).unwrap_err().to_string();
        assert!(err.contains("AWS_REGION"), "{err}");
        assert!(config(&[("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]).is_ok());
    }
}
