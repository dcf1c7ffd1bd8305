//! PUTs to presigned S3 URLs: CloudFormation custom-resource responses and WaitCondition
//! signals. The URL was signed without a Content-Type, so none may be sent (an empty one).

use ferry_flows::aws_error::{AwsCallError, AwsErrorKind};

/// The client for presigned PUTs: it follows no redirect (a 3xx is an answer, never a hop to
/// wherever it points) and gives up after a minute.
pub fn presigned_put_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        // Never reqwest's default instead: it follows redirects. The builder fails only when
        // the TLS backend can't start, and then no PUT could be sent anyway.
        .expect("the presigned-PUT client (TLS backend) could not be built")
}

/// Where a presigned PUT may go. A custom-resource event's ResponseURL is untrusted text (#15):
/// AWS documents it only as "an Amazon S3 pre-signed URL" (CloudFormation User Guide, custom
/// resource request objects), so the rule is an S3 endpoint and no narrower, to work whatever
/// bucket name or endpoint form CloudFormation uses: HTTPS, no user name or password, the
/// default port, and a host of S3's forms under `amazonaws.com` / `amazonaws.com.cn`
/// (`[bucket.]s3[-region|-fips].amazonaws.com`, `[bucket.]s3[.dualstack].region.amazonaws.com`):
/// not API Gateway, load balancers, EC2 names or internal hosts. A presigned PUT to a bucket of
/// the caller's own is still possible (docs/security.md): the bucket's name is not documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrlRule {
    pub schemes: Vec<String>,
    /// A host is allowed when it is one of these or ends with `.` and one of them.
    pub host_suffixes: Vec<String>,
    /// Only hosts of S3's endpoint forms (see above).
    pub s3_endpoints_only: bool,
}

impl Default for PresignedUrlRule {
    fn default() -> Self {
        Self {
            schemes: vec!["https".to_string()],
            host_suffixes: vec!["amazonaws.com".to_string(), "amazonaws.com.cn".to_string()],
            s3_endpoints_only: true,
        }
    }
}

/// `s3`, `s3-fips`, `s3-<region>`, `s3-fips-<region>`: the label that names S3 in an endpoint.
fn is_s3_label(label: &str) -> bool {
    label == "s3"
        || label
            .strip_prefix("s3-")
            .is_some_and(|rest| !rest.is_empty())
}

/// `us-east-1`, `cn-north-1`, `us-gov-west-1`: a Region's code.
fn is_region_label(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

/// The host is S3's: some label names S3, and only `dualstack`, `fips` or a Region come between
/// it and `amazonaws.com[.cn]`.
fn is_s3_endpoint(host: &str) -> bool {
    let stem = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"));
    let Some(stem) = stem else { return false };
    let labels: Vec<&str> = stem.split('.').collect();
    labels.iter().enumerate().any(|(i, label)| {
        is_s3_label(label)
            && labels[i + 1..]
                .iter()
                .all(|l| *l == "dualstack" || *l == "fips" || is_region_label(l))
            && labels.len() - i - 1 <= 2
    })
}

impl PresignedUrlRule {
    /// `Ok` when `url` may be PUT to; otherwise why not (the URL itself is never repeated: it
    /// carries a signature).
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        if !self.schemes.iter().any(|s| s == parsed.scheme()) {
            return Err(format!(
                "scheme {:?} is not one of {:?}",
                parsed.scheme(),
                self.schemes
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("it carries a user name or password".to_string());
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self
            .host_suffixes
            .iter()
            .any(|s| host == *s || host.ends_with(&format!(".{s}")));
        if !allowed || (self.s3_endpoints_only && !is_s3_endpoint(&host)) {
            return Err(format!(
                "host {host:?} is not an S3 endpoint under {}",
                self.host_suffixes.join(", ")
            ));
        }
        if self.schemes == ["https"] && parsed.port().is_some_and(|p| p != 443) {
            return Err("it names a port other than 443".to_string());
        }
        Ok(())
    }
}

pub async fn put_presigned(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<(), AwsCallError> {
    let response = client
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "")
        .body(body)
        .send()
        .await
        .map_err(|e| AwsCallError {
            kind: AwsErrorKind::Transient,
            code: "NetworkError".to_string(),
            // Without the URL: it carries a signature, and it is someone's text.
            message: format!("PUT to the presigned URL failed: {}", e.without_url()),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(AwsCallError {
        kind: if status.is_server_error() {
            AwsErrorKind::Transient
        } else if status.as_u16() == 403 {
            AwsErrorKind::AccessDenied
        } else {
            AwsErrorKind::Other
        },
        code: format!("HTTP {}", status.as_u16()),
        message: text.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::PresignedUrlRule;

    #[test]
    fn only_https_aws_hosts_pass_the_default_rule() {
        let rule = PresignedUrlRule::default();
        for ok in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws/x?X-Amz-Signature=a",
            "https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/x",
            "https://s3.cn-north-1.amazonaws.com.cn/bucket/key",
            "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com:443/x",
            "https://cloudformation-custom-resource-response-uswest2.s3.us-west-2.amazonaws.com/x",
            "https://b.s3.dualstack.eu-west-1.amazonaws.com/x",
            "https://b.s3-fips.us-gov-west-1.amazonaws.com/x",
            "https://b.s3-us-gov-west-1.amazonaws.com/x",
        ] {
            assert_eq!(rule.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://evil.example/amazonaws.com",
            "https://amazonaws.com.evil.example/x",
            "https://s3.amazonaws.com@evil.example/x",
            "https://user:pw@s3.amazonaws.com/x",
            "https://s3.amazonaws.com:8443/x",
            "https://notamazonaws.com/x",
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
            "https://my-lb-1234.us-east-1.elb.amazonaws.com/x",
            "https://ec2-1-2-3-4.compute-1.amazonaws.com/x",
            "https://s3.execute-api.us-east-1.amazonaws.com/x",
            "https://sts.amazonaws.com/x",
            "not a url",
        ] {
            assert!(rule.check(bad).is_err(), "{bad} must be refused");
        }
    }
}
