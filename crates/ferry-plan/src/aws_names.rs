//! Syntax of AWS identifiers Ferry takes from people: account ids, regions, bucket names,
//! IAM role names and KMS key ARNs. Each check returns the reason in words, for the problem list.

/// A partition's name and DNS suffix, by the Region patterns of botocore's `partitions.json`
/// (each partition's `regionRegex` and `dnsSuffix`).
const PARTITIONS: [(&str, &str, &str); 7] = [
    ("cn-", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-", "aws-us-gov", "amazonaws.com"),
    ("us-iso-", "aws-iso", "c2s.ic.gov"),
    ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
    ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
    ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
    ("eusc-", "aws-eusc", "amazonaws.eu"),
];

fn partition_entry(region: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    PARTITIONS
        .iter()
        .find(|(prefix, _, _)| region.starts_with(prefix))
}

/// The ARN partition a Region belongs to (`aws`, `aws-cn`, `aws-us-gov`, the ISO partitions,
/// `aws-eusc`).
pub fn partition_for_region(region: &str) -> &'static str {
    partition_entry(region).map_or("aws", |(_, partition, _)| partition)
}

/// The DNS suffix of a Region's partition (`amazonaws.com`, `amazonaws.com.cn`, ...): the
/// template's `${AWS::URLSuffix}`.
pub fn dns_suffix_for_region(region: &str) -> &'static str {
    partition_entry(region).map_or("amazonaws.com", |(_, _, suffix)| suffix)
}

pub fn check_account_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an AWS account id is exactly 12 digits (keep leading zeros; quote it in TOML)".into())
    }
}

/// Region names look like `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`,
/// `eusc-de-east-1`.
pub fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let well_formed = parts.len() >= 3
        && (parts[0].len() == 2 || parts[0] == "eusc")
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0);
    if well_formed {
        Ok(())
    } else {
        Err("not an AWS region name such as us-east-1 or eu-west-2".into())
    }
}

/// S3 general purpose bucket naming rules.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let mut reasons = Vec::new();
    if !(3..=63).contains(&name.len()) {
        reasons.push("must be 3 to 63 characters long".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        reasons.push("may hold only lowercase letters, digits, dots and hyphens".to_string());
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        reasons.push("must begin and end with a letter or digit".to_string());
    }
    if name.contains("..") {
        reasons.push("must not contain two adjacent dots".to_string());
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        reasons.push("must not look like an IP address".to_string());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            reasons.push(format!(
                "must not begin with the reserved prefix {prefix:?}"
            ));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            reasons.push(format!("must not end with the reserved suffix {suffix:?}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not a valid S3 bucket name: {}",
            reasons.join("; ")
        ))
    }
}

/// IAM role names: 1–64 of letters, digits and `+=,.@_-`.
pub fn check_role_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("an IAM role name is 1 to 64 letters, digits or any of + = , . @ _ -".into())
    }
}

/// Batch Operations job ids are UUIDs; Ferry accepts letters, digits, `-` and `_`, at most 64,
/// so an id can't smuggle a path or a shell word into a key or a command.
pub fn check_job_id(job_id: &str) -> Result<(), &'static str> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 64
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("not a Batch Operations job id (letters, digits, '-' and '_', at most 64 characters); use the id from the e-mail or `ferry status`")
    }
}

/// Storage classes an S3 Inventory may list.
pub const KNOWN_STORAGE_CLASSES: [&str; 11] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
];

/// Storage classes whose objects must be restored before they can be read, so a copy fails.
pub const ARCHIVED_STORAGE_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// A parsed KMS key ARN: `arn:<partition>:kms:<region>:<account>:key/<key-id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyArn {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub key_id: String,
}

/// Why a KMS key reference can't be used where a key ARN is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsKeyRefProblem {
    /// `aws/s3` (bare or as an alias ARN): the AWS managed key for S3.
    AwsManagedS3Key,
    /// Any other alias name or alias ARN.
    Alias,
    /// A bare key id or something else that is not a key ARN.
    Malformed(String),
}

impl KmsKeyArn {
    pub fn parse(text: &str) -> Result<Self, KmsKeyRefProblem> {
        if text == "aws/s3" || text == "alias/aws/s3" || text.ends_with(":alias/aws/s3") {
            return Err(KmsKeyRefProblem::AwsManagedS3Key);
        }
        if text.starts_with("alias/") || (text.starts_with("arn:") && text.contains(":alias/")) {
            return Err(KmsKeyRefProblem::Alias);
        }
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kms" {
            return Err(KmsKeyRefProblem::Malformed(
                "expected a key ARN: arn:aws:kms:<region>:<account-id>:key/<key-id>".into(),
            ));
        }
        let (partition, region, account_id, resource) = (parts[1], parts[3], parts[4], parts[5]);
        let mut reasons = Vec::new();
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            reasons.push(format!("unknown partition {partition:?}"));
        }
        if check_region(region).is_err() {
            reasons.push(format!("{region:?} is not a region"));
        }
        if check_account_id(account_id).is_err() {
            reasons.push(format!("{account_id:?} is not a 12-digit account id"));
        }
        let key_id = match resource.strip_prefix("key/") {
            Some(id) if is_key_id(id) => id,
            _ => {
                reasons.push(format!(
                    "{resource:?} is not key/<key-id> (a UUID, or mrk-<32 hex> for a multi-Region key)"
                ));
                ""
            }
        };
        if !reasons.is_empty() {
            return Err(KmsKeyRefProblem::Malformed(format!(
                "not a well-formed KMS key ARN: {}",
                reasons.join("; ")
            )));
        }
        Ok(Self {
            partition: partition.to_string(),
            region: region.to_string(),
            account_id: account_id.to_string(),
            key_id: key_id.to_string(),
        })
    }
}

fn is_key_id(id: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(mrk) = id.strip_prefix("mrk-") {
        return mrk.len() == 32 && hex(mrk);
    }
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && hex(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("my-bucket.logs-01").is_ok());
        for bad in [
            "ab",
            "My-Bucket",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "foo-s3alias",
            "under_score",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn regions_and_accounts() {
        for good in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-5",
        ] {
            assert!(check_region(good).is_ok(), "{good}");
        }
        for bad in ["us-east", "US-EAST-1", "useast1", "us-east-0", ""] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
        assert!(check_account_id("012345678901").is_ok());
        assert!(check_account_id("12345678901").is_err());
        assert!(check_account_id("12345678901a").is_err());
    }

    #[test]
    fn kms_key_arns() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let k = KmsKeyArn::parse(arn).unwrap();
        assert_eq!(
            (k.region.as_str(), k.account_id.as_str()),
            ("eu-west-1", "111122223333")
        );
        assert!(KmsKeyArn::parse(
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        )
        .is_ok());
        assert_eq!(
            KmsKeyArn::parse("alias/aws/s3"),
            Err(KmsKeyRefProblem::AwsManagedS3Key)
        );
        assert_eq!(
            KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/aws/s3"),
            Err(KmsKeyRefProblem::AwsManagedS3Key)
        );
        assert_eq!(
            KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:alias/mine"),
            Err(KmsKeyRefProblem::Alias)
        );
        assert!(matches!(
            KmsKeyArn::parse("1234abcd-12ab-34cd-56ef-1234567890ab"),
            Err(KmsKeyRefProblem::Malformed(_))
        ));
        assert!(matches!(
            KmsKeyArn::parse("arn:aws:kms:eu-west-1:1111:key/nope"),
            Err(KmsKeyRefProblem::Malformed(_))
        ));
    }
}

#[cfg(test)]
mod partition_tests {
    use super::*;

    /// botocore `partitions.json`: each partition's Region pattern, name and DNS suffix.
    #[test]
    fn regions_map_to_their_partition_and_dns_suffix() {
        for (region, partition, suffix) in [
            ("us-east-1", "aws", "amazonaws.com"),
            ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
            ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
            ("us-iso-east-1", "aws-iso", "c2s.ic.gov"),
            ("us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"),
            ("eu-isoe-west-1", "aws-iso-e", "cloud.adc-e.uk"),
            ("us-isof-south-1", "aws-iso-f", "csp.hci.ic.gov"),
            ("eusc-de-east-1", "aws-eusc", "amazonaws.eu"),
        ] {
            assert_eq!(partition_for_region(region), partition, "{region}");
            assert_eq!(dns_suffix_for_region(region), suffix, "{region}");
            assert_eq!(check_region(region), Ok(()), "{region}");
        }
    }
}
