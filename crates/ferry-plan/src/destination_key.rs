//! Where a copy lands: the destination folder a spec names, as Batch Operations' `TargetKeyPrefix`
//! and as the key the large-object copier writes, so both jobs of a transfer name copies alike.

/// `S3PutObjectCopy.TargetKeyPrefix` for a spec's `destination.key_prefix`, which is a folder
/// (`from-prod/`): the folder without its trailing `/`.
///
/// Batch Operations puts a `/` between `TargetKeyPrefix` and the key, so `Folder1` copies `a.txt`
/// to `Folder1/a.txt`. The s3control service model (botocore `service-2.json`,
/// `S3CopyObjectOperation.TargetKeyPrefix`) says: "to copy objects into a folder named `Folder1`
/// in the destination bucket, set the `TargetKeyPrefix` property to `Folder1`"; it doesn't spell
/// out the slash, an older text of the same model (2020–2022) said `Folder1/`, and tools that run
/// real jobs strip the slash (boto/boto3#3420, now aws/aws-sdk#355). So: assumed, verify on a
/// real job.
/// No single form is right under both readings; this one fails loudly if it is wrong: the batch
/// role may write only under `<folder>/`, so a copy named `from-prodkey` is refused
/// (AccessDenied in the completion report), never written elsewhere. What a prefix that already
/// ends in `/` gives is undocumented and risks `from-prod//a.txt`, so the slash is never sent;
/// and since a prefix always becomes a folder, the spec must say so ([`check_key_prefix`]).
pub fn target_key_prefix(folder: &str) -> &str {
    folder.trim_end_matches('/')
}

/// The key a copy gets under `TargetKeyPrefix` (as sent in the job): `<prefix>/<key>`, or the
/// source key without a prefix. The large-object copier names its copies with this too, so
/// both jobs of a transfer write byte-identical keys.
pub fn copied_key(target_key_prefix: Option<&str>, source_key: &str) -> String {
    // Older LambdaInvoke jobs sent the prefix with its slash: either form gives one key.
    match target_key_prefix.map(|p| p.trim_end_matches('/')) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}/{source_key}"),
        _ => source_key.to_string(),
    }
}

/// `destination.key_prefix` must be a folder: `<name>/`, not starting with `/`, without empty
/// segments. Batch Operations makes every prefix a folder ([`target_key_prefix`]), so a prefix
/// such as `backup-` (meant as `backup-<key>`) can't be honoured and is refused.
pub fn check_key_prefix(prefix: &str) -> Result<(), String> {
    let folder = target_key_prefix(prefix);
    if folder.is_empty() || prefix.starts_with('/') || folder.contains("//") {
        return Err(
            "must be a folder such as \"from-prod/\" or \"archive/2026/\": no leading '/', no empty \
             segment ('//')"
                .to_string(),
        );
    }
    if !prefix.ends_with('/') || prefix.ends_with("//") {
        return Err(format!(
            "Batch Operations always puts a '/' between the prefix and the key (TargetKeyPrefix \"{folder}\" copies \
             a/b.txt to {folder}/a/b.txt), so the prefix is a folder: write it as \"{folder}/\""
        ));
    }
    Ok(())
}
