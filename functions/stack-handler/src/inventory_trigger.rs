//! `Custom::FerryInventoryTrigger`: makes the inventory bucket send its events to EventBridge,
//! where the stack's rule picks up each new `manifest.checksum` for the inventory-handler.
//!
//! Why a custom resource: the inventory bucket is not the stack's, and S3 keeps one notification
//! configuration per bucket, so setting it from a template would overwrite the owner's topic,
//! queue and Lambda notifications. This reads the configuration, adds
//! `EventBridgeConfiguration` and puts the rest back as read (ferry-aws
//! `enable_eventbridge_delivery`).
//!
//! Properties: `Bucket`, `ExpectedBucketOwner` (the account that must own it). Delete leaves
//! EventBridge delivery on: other rules may have come to rely on it, and by itself it costs
//! nothing and sends nothing anywhere.

use serde_json::Value;

use crate::{text_property, Outcome};

pub const INVENTORY_TRIGGER_TYPE: &str = "Custom::FerryInventoryTrigger";

/// Create and Update: turn EventBridge delivery on.
pub(crate) async fn enable(properties: &Value) -> Outcome {
    let bucket = text_property(properties, "Bucket");
    let owner = text_property(properties, "ExpectedBucketOwner");
    if bucket.is_empty() || owner.is_empty() {
        return Outcome::failed(format!(
            "{INVENTORY_TRIGGER_TYPE} needs Bucket and ExpectedBucketOwner (got Bucket={bucket:?}, \
             ExpectedBucketOwner={owner:?})"
        ));
    }
    let config = aws_config::load_from_env().await;
    let s3 = aws_sdk_s3::Client::new(&config);
    match ferry_aws::inventory::enable_eventbridge_delivery(&s3, &bucket, &owner).await {
        Ok(changed) => Outcome::success(
            Some(format!("ferry-inventory-trigger-{bucket}")),
            &[("EventBridgeEnabledByFerry", changed.to_string())],
            None,
        ),
        Err(e) => Outcome::failed(format!(
            "turning on EventBridge delivery for s3://{bucket} failed ({e}): the stack-handler role needs \
             s3:GetBucketNotification and s3:PutBucketNotification on it, and the bucket must be owned by \
             {owner}. Or turn it on yourself: aws s3api put-bucket-notification-configuration (keeping the \
             existing configurations) with \"EventBridgeConfiguration\": {{}}"
        )),
    }
}

/// Delete: nothing to undo (see the module documentation).
pub(crate) fn delete() -> Outcome {
    Outcome::success(None, &[], None)
}
