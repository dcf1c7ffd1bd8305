//! The large-object copier's ports on AWS: `sts:AssumeRole` into the transfer's Batch
//! Operations role, then S3 as that role (`crate::large_copy`), and S3 Control as the copier's
//! own role to look up the job that invoked it.

use aws_config::SdkConfig;
use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};
use ferry_flows::large_object::invocation::CopierPorts;
use ferry_flows::large_object::invoking_job::InvokingJob;
use ferry_flows::large_object::job_manifest::{FetchedManifest, ManifestLocation};
use ferry_flows::large_object::resume::SessionIdentity;

use crate::errors::classify;
use crate::large_copy::{describe_invoking_job, AwsMultipartCopy};

/// `sts:AssumeRole` into the batch role, then an S3 client with those credentials.
pub struct StsCopierPorts {
    pub base: SdkConfig,
    /// Path-style addressing (moto); virtual-hosted on AWS.
    pub force_path_style: bool,
    /// The source bucket's Region (`FERRY_SOURCE_REGION`, pinned by the template) when it is
    /// not the function's own: source reads then go to a client of that Region.
    pub source_region: Option<String>,
    /// S3 Control in the function's Region, as the function's own role (jobs run there).
    pub s3control: aws_sdk_s3control::Client,
}

impl StsCopierPorts {
    pub fn new(base: SdkConfig, force_path_style: bool) -> Self {
        Self {
            s3control: aws_sdk_s3control::Client::new(&base),
            base,
            force_path_style,
            source_region: None,
        }
    }

    pub fn with_source_region(mut self, region: Option<String>) -> Self {
        self.source_region = region;
        self
    }

    /// Another S3 Control client (tests: one that reaches the gateway).
    pub fn with_s3control(mut self, s3control: aws_sdk_s3control::Client) -> Self {
        self.s3control = s3control;
        self
    }
}

/// `arn:<partition>:sts::<account>:assumed-role/<role name>/<session>` for a role ARN.
fn session_arn(role_arn: &str, session: &str) -> String {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            let name = resource.rsplit('/').next().unwrap_or(resource);
            format!("arn:{partition}:sts::{account}:assumed-role/{name}/{session}")
        }
        _ => String::new(),
    }
}

impl CopierPorts for StsCopierPorts {
    type Api = AwsMultipartCopy;

    async fn act_as(
        &self,
        role_arn: &str,
        session: &str,
    ) -> Result<(AwsMultipartCopy, SessionIdentity), AwsCallError> {
        let out = aws_sdk_sts::Client::new(&self.base)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            // The longest a role chain allows, and more than one invocation's 15 minutes.
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| {
                let mut err = classify(&e);
                if err.kind == AwsErrorKind::AccessDenied {
                    err.message = format!(
                        "{}. The copier's execution role must be allowed sts:AssumeRole on {role_arn}, and that role's \
                         trust policy must name the execution role (the stack writes both)",
                        err.message
                    );
                }
                err
            })?;
        let Some(c) = out.credentials() else {
            return Err(AwsCallError {
                kind: AwsErrorKind::Transient,
                code: "NoCredentials".into(),
                message: format!("sts:AssumeRole {role_arn} answered without credentials"),
            });
        };
        // Who S3 will name as the initiator of this session's uploads.
        let identity = match out.assumed_role_user() {
            Some(user) => SessionIdentity {
                arn: user.arn().to_string(),
                assumed_role_id: Some(user.assumed_role_id().to_string())
                    .filter(|id| !id.is_empty()),
            },
            None => SessionIdentity {
                arn: session_arn(role_arn, session),
                assumed_role_id: None,
            },
        };
        let credentials = aws_sdk_s3::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ferry-batch-role",
        );
        let client = |region: Option<&str>| {
            let mut b = aws_sdk_s3::config::Builder::from(&self.base)
                .credentials_provider(credentials.clone())
                .force_path_style(self.force_path_style);
            if let Some(region) = region {
                b = b.region(aws_sdk_s3::config::Region::new(region.to_string()));
            }
            aws_sdk_s3::Client::from_conf(b.build())
        };
        let copy = AwsMultipartCopy::new(client(None));
        let own = self.base.region().map(|r| r.as_ref());
        let api = match self.source_region.as_deref() {
            Some(source) if Some(source) != own => copy.with_source_client(client(Some(source))),
            _ => copy,
        };
        Ok((api, identity))
    }

    async fn describe_job(
        &self,
        account_id: &str,
        job_id: &str,
    ) -> Result<InvokingJob, AwsCallError> {
        describe_invoking_job(&self.s3control, account_id, job_id).await
    }

    async fn read_manifest(
        &self,
        api: &AwsMultipartCopy,
        location: &ManifestLocation,
        max_bytes: u64,
    ) -> Result<FetchedManifest, AwsCallError> {
        api.read_job_manifest(location, max_bytes).await
    }
}
