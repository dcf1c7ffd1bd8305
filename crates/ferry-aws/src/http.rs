//! PUTs to presigned S3 URLs: CloudFormation custom-resource responses and WaitCondition
//! signals. The URL was signed without a Content-Type, so none may be sent (an empty one).

use ferry_core::launch::{AwsCallError, AwsErrorKind};

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
            message: format!("PUT to the presigned URL failed: {e}"),
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
