//! Ferry's [`CreateJobRequest`] (plain data, AWS field names) onto the SDK's CreateJob call.

use aws_sdk_s3control::operation::create_job::builders::CreateJobFluentBuilder;
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, LambdaInvokeOperation,
    S3ChecksumAlgorithm, S3CopyObjectOperation, S3MetadataDirective, S3ObjectMetadata,
    S3SseAlgorithm, S3StorageClass, S3Tag,
};
use aws_smithy_types::error::operation::BuildError;
use ferry_plan::job::CreateJobRequest;

/// Fills every field of the SDK call from the request. Enum values pass through as strings
/// (the SDK keeps unknown ones), so a value S3 adds later is not lost here.
pub fn fill(
    call: CreateJobFluentBuilder,
    r: &CreateJobRequest,
) -> Result<CreateJobFluentBuilder, BuildError> {
    let operation = match &r.operation {
        ferry_plan::job::JobOperation::S3PutObjectCopy(copy) => {
            JobOperation::builder().s3_put_object_copy(copy_operation(copy)?)
        }
        ferry_plan::job::JobOperation::LambdaInvoke(invoke) => {
            let mut op = LambdaInvokeOperation::builder()
                .function_arn(&invoke.function_arn)
                .invocation_schema_version(&invoke.invocation_schema_version);
            for (k, v) in &invoke.user_arguments {
                op = op.user_arguments(k, v);
            }
            JobOperation::builder().lambda_invoke(op.build())
        }
    }
    .build();
    let report = JobReport::builder()
        .bucket(&r.report.bucket)
        .format(JobReportFormat::from(r.report.format.as_str()))
        .enabled(r.report.enabled)
        .prefix(&r.report.prefix)
        .report_scope(JobReportScope::from(r.report.report_scope.as_str()))
        .expected_bucket_owner(&r.report.expected_bucket_owner)
        .build();
    let spec = JobManifestSpec::builder()
        .format(JobManifestFormat::from(r.manifest.spec.format.as_str()))
        .set_fields(r.manifest.spec.fields.as_ref().map(|f| {
            f.iter()
                .map(|n| JobManifestFieldName::from(n.as_str()))
                .collect()
        }))
        .build()?;
    let location = JobManifestLocation::builder()
        .object_arn(&r.manifest.location.object_arn)
        .set_object_version_id(r.manifest.location.object_version_id.clone())
        .e_tag(&r.manifest.location.etag)
        .build()?;
    Ok(call
        .account_id(&r.account_id)
        .confirmation_required(r.confirmation_required)
        .operation(operation)
        .report(report)
        .client_request_token(&r.client_request_token)
        .manifest(JobManifest::builder().spec(spec).location(location).build())
        .set_description(r.description.clone())
        .priority(i32::try_from(r.priority).unwrap_or(i32::MAX))
        .role_arn(&r.role_arn)
        .set_tags(Some(tags_of(&r.tags)?)))
}

fn copy_operation(
    copy: &ferry_plan::job::S3CopyObjectOperation,
) -> Result<S3CopyObjectOperation, BuildError> {
    let m = &copy.new_object_metadata;
    let mut metadata = S3ObjectMetadata::builder()
        .set_cache_control(m.cache_control.clone())
        .set_content_disposition(m.content_disposition.clone())
        .set_content_encoding(m.content_encoding.clone())
        .set_content_language(m.content_language.clone())
        .set_content_type(m.content_type.clone())
        .sse_algorithm(S3SseAlgorithm::from(m.sse_algorithm.as_str()));
    for (k, v) in &m.user_metadata {
        metadata = metadata.user_metadata(k, v);
    }
    let new_tags = match &copy.new_object_tagging {
        Some(tags) => Some(tags_of(tags)?),
        None => None,
    };
    Ok(S3CopyObjectOperation::builder()
        .target_resource(&copy.target_resource)
        .set_target_key_prefix(copy.target_key_prefix.clone())
        .set_storage_class(copy.storage_class.as_deref().map(S3StorageClass::from))
        .set_sse_aws_kms_key_id(copy.sse_aws_kms_key_id.clone())
        .set_bucket_key_enabled(copy.bucket_key_enabled)
        .set_checksum_algorithm(
            copy.checksum_algorithm
                .as_deref()
                .map(S3ChecksumAlgorithm::from),
        )
        .metadata_directive(S3MetadataDirective::from(copy.metadata_directive.as_str()))
        .new_object_metadata(metadata.build())
        .set_new_object_tagging(new_tags)
        .build())
}

fn tags_of(tags: &[ferry_plan::job::S3Tag]) -> Result<Vec<S3Tag>, BuildError> {
    tags.iter()
        .map(|t| S3Tag::builder().key(&t.key).value(&t.value).build())
        .collect()
}
