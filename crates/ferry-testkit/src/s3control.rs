//! S3 Control through the authorizing gateway: a real `aws_sdk_s3control::Client` whose job
//! calls (CreateJob, DescribeJob, GetJobTagging, UpdateJobStatus, …) are authorized by the
//! gateway as IAM would (`s3:CreateJob` and `iam:PassRole` with `iam:PassedToService`, the job
//! actions on `arn:aws:s3:REGION:ACCOUNT:job/ID`) and answered from the gateway's job table
//! (`tests/gateway/s3control-jobs.mjs`; moto implements no jobs). The Batch Operations emulator
//! ([`crate::batch_ops`]) moves those jobs through their statuses ([`publish_job`]).
//!
//! Why an interceptor: S3 Control's endpoint rules put the account id in front of the host
//! (`{AccountId}.{endpoint host}`, `RequiresAccountId`), and `222222222222.127.0.0.1` resolves
//! nowhere. After signing, the interceptor sends the request to the gateway's address and keeps
//! the signed `Host` header, as a resolver pointing that name at the gateway would.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3control::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_s3control::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3control::error::BoxError;
use aws_sdk_s3control::operation::create_job::CreateJobInput;
use serde_json::Value;

use crate::accounts::SentJobs;
use crate::moto::{http_call, MotoServer};

/// An S3 Control client for `config` (its credentials act; requests go through the gateway),
/// and the CreateJob requests it sent, for the emulator to run.
pub fn s3control_client(config: &SdkConfig) -> (aws_sdk_s3control::Client, SentJobs) {
    let gateway = config
        .endpoint_url()
        .expect("a testkit SdkConfig has the gateway's endpoint")
        .to_string();
    let sent = SentJobs::default();
    let conf = aws_sdk_s3control::config::Builder::from(config)
        .interceptor(ToTheGateway {
            gateway,
            sent: sent.clone(),
        })
        .build();
    (aws_sdk_s3control::Client::from_conf(conf), sent)
}

#[derive(Debug)]
struct ToTheGateway {
    gateway: String,
    sent: SentJobs,
}

impl Intercept for ToTheGateway {
    fn name(&self) -> &'static str {
        "ferry-testkit S3 Control to the gateway"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<CreateJobInput>() {
            self.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(input.clone());
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let (host, path) = authority_and_path(request.uri());
        let (gateway, _) = authority_and_path(&self.gateway);
        let target = format!("http://{gateway}{path}");
        request
            .set_uri(target.as_str())
            .map_err(|e| format!("{e}: {target} (from {})", request.uri()))?;
        if !request.headers().contains_key("host") {
            request.headers_mut().insert("host", host);
        }
        Ok(())
    }
}

/// `http://authority/path?query` → (authority, "/path?query").
fn authority_and_path(uri: &str) -> (String, String) {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// What the gateway's job table holds for a job: `{"status", "priority", "requestedStatus"?}`,
/// or `None` when S3 Control never created it (a mocked CreateJob, or the gateway is off).
/// Panics when S3 Control created it in another Region: the job would run there, not here.
pub async fn gateway_job(
    moto: &MotoServer,
    account: &str,
    region: &str,
    id: &str,
) -> Option<Value> {
    let (status, body) = control(moto, "GET", account, region, id, String::new()).await?;
    let answer: Value = serde_json::from_str(&body).ok()?;
    if status != 200 {
        let elsewhere = answer["regions"].as_array().cloned().unwrap_or_default();
        assert!(
            elsewhere.is_empty(),
            "job {id} of {account} was created in {elsewhere:?}, not in {region}"
        );
        return None;
    }
    Some(answer)
}

/// Tells the gateway's job table where a job is: `update` has `status`, `total`, `succeeded`,
/// `failed` and `failureReasons` (`[[code, reason]…]`). A job S3 Control never created is left
/// alone (returns false).
pub async fn publish_job(
    moto: &MotoServer,
    account: &str,
    region: &str,
    id: &str,
    update: &Value,
) -> bool {
    matches!(
        control(moto, "POST", account, region, id, update.to_string()).await,
        Some((200, _))
    )
}

async fn control(
    moto: &MotoServer,
    method: &'static str,
    account: &str,
    region: &str,
    id: &str,
    body: String,
) -> Option<(u16, String)> {
    let path = format!("/_ferry/s3control/jobs/{account}/{region}/{id}");
    harness_call(moto, method, path, body).await
}

/// A call to the gateway's harness API (`/_ferry/…`): its status and body, or `None` when the
/// gateway is off or unreachable.
pub(crate) async fn harness_call(
    moto: &MotoServer,
    method: &'static str,
    path: String,
    body: String,
) -> Option<(u16, String)> {
    if !moto.authorizes() {
        return None;
    }
    let port: u16 = moto.endpoint_url().rsplit(':').next()?.parse().ok()?;
    tokio::task::spawn_blocking(move || {
        http_call(port, method, &path, &body, Duration::from_secs(10)).ok()
    })
    .await
    .ok()
    .flatten()
}
