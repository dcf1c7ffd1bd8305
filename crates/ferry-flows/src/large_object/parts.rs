//! The part-size plan of a multipart copy: how an object of a given size is cut into
//! `UploadPartCopy` ranges.
//!
//! S3's rules: at most 10,000 parts, each 5 MiB–5 GiB except the last (which may be smaller),
//! objects up to 5 TiB. Within them Ferry prefers fairly large parts (256 MiB): fewer requests,
//! and each request keeps S3 busy long enough that 16 in flight saturate what one invocation
//! can drive, while one part still finishes well inside the time an invocation keeps in reserve
//! before its 15 minutes run out. The plan depends only on the size and the sizing, so a retry
//! computes the same plan and can check the parts an earlier invocation copied against it.

use serde::Serialize;

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

/// S3's limits on multipart uploads.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * GIB;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;

/// How parts are sized. [`PartSizing::default`] is S3's rules with Ferry's preferred size;
/// tests scale it down (moto accepts a 5 MiB part like S3 does, so a "large" object is a
/// few MiB there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartSizing {
    /// The part size used whenever the 10,000-part limit allows it.
    pub preferred_part_size: u64,
    pub min_part_size: u64,
    pub max_part_size: u64,
    pub max_parts: u64,
    pub max_object_size: u64,
}

impl Default for PartSizing {
    fn default() -> Self {
        Self {
            preferred_part_size: 256 * MIB,
            min_part_size: MIN_PART_SIZE,
            max_part_size: MAX_PART_SIZE,
            max_parts: MAX_PARTS,
            max_object_size: MAX_OBJECT_SIZE,
        }
    }
}

impl PartSizing {
    /// S3's rules with another preferred part size (clamped to 5 MiB–5 GiB).
    pub fn with_preferred_part_size(bytes: u64) -> Self {
        let d = Self::default();
        Self {
            preferred_part_size: bytes.clamp(d.min_part_size, d.max_part_size),
            ..d
        }
    }
}

/// One part: its number (1-based, as S3 counts) and byte range (inclusive, as HTTP's
/// `Range: bytes=first-last` and `x-amz-copy-source-range` write it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartRange {
    pub part_number: u32,
    pub first_byte: u64,
    /// Bytes in the part (0 only for the single part of an empty object).
    pub size: u64,
}

impl PartRange {
    /// `bytes=first-last`, or `None` for an empty part (copied without a range).
    pub fn copy_source_range(&self) -> Option<String> {
        (self.size > 0).then(|| {
            format!(
                "bytes={}-{}",
                self.first_byte,
                self.first_byte + self.size - 1
            )
        })
    }
}

/// How an object is copied in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartPlan {
    pub object_size: u64,
    pub part_size: u64,
    pub part_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartPlanError {
    #[error(
        "the object is {size} bytes, over S3's largest object ({max} bytes): it can't be copied"
    )]
    TooLarge { size: u64, max: u64 },
}

impl PartPlan {
    /// The preferred part size, or the smallest whole-MiB size that keeps the count within
    /// the part limit, whichever is larger.
    pub fn for_size(object_size: u64, sizing: &PartSizing) -> Result<Self, PartPlanError> {
        if object_size > sizing.max_object_size {
            return Err(PartPlanError::TooLarge {
                size: object_size,
                max: sizing.max_object_size,
            });
        }
        let needed = object_size.div_ceil(sizing.max_parts.max(1));
        let needed_mib = needed.div_ceil(MIB) * MIB;
        let part_size = sizing
            .preferred_part_size
            .max(needed_mib)
            .clamp(sizing.min_part_size, sizing.max_part_size)
            .max(1);
        let part_count = object_size.div_ceil(part_size).max(1);
        Ok(Self {
            object_size,
            part_size,
            // At most max_parts (10,000), so it fits.
            part_count: u32::try_from(part_count).unwrap_or(u32::MAX),
        })
    }

    /// Part `n` (1-based), or `None` outside the plan.
    pub fn part(&self, part_number: u32) -> Option<PartRange> {
        if part_number == 0 || part_number > self.part_count {
            return None;
        }
        let first_byte = u64::from(part_number - 1) * self.part_size;
        let size = self.part_size.min(self.object_size - first_byte);
        Some(PartRange {
            part_number,
            first_byte,
            size,
        })
    }

    pub fn parts(&self) -> impl Iterator<Item = PartRange> + '_ {
        (1..=self.part_count).filter_map(|n| self.part(n))
    }
}

/// An open multipart upload on the destination key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub upload_id: String,
    pub initiated_ms: Option<i64>,
    pub initiator_id: Option<String>,
}

/// A part in the upload (from UploadPartCopy or ListParts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedPart {
    pub part_number: u32,
    pub etag: String,
    /// Known from ListParts and from the plan; checked on resume.
    pub size: Option<u64>,
    /// The part's checksum in the upload's algorithm, when it has one.
    pub checksum: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn preferred_size_until_the_part_limit_forces_larger() {
        let s = PartSizing::default();
        let p = PartPlan::for_size(6 * GIB, &s).unwrap();
        assert_eq!((p.part_size, p.part_count), (256 * MIB, 24));
        let p = PartPlan::for_size(MAX_OBJECT_SIZE, &s).unwrap();
        assert_eq!(p.part_size, 525 * MIB);
        assert_eq!(p.part_count, 9_987);
        assert!(PartPlan::for_size(MAX_OBJECT_SIZE + 1, &s).is_err());
    }

    #[test]
    fn ranges_cover_the_object_exactly() {
        let p = PartPlan::for_size(12 * MIB + 3, &PartSizing::with_preferred_part_size(0)).unwrap();
        let parts: Vec<_> = p.parts().collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0].copy_source_range().as_deref(),
            Some("bytes=0-5242879")
        );
        assert_eq!(parts[2].size, 2 * MIB + 3);
        let empty = PartPlan::for_size(0, &PartSizing::default()).unwrap();
        assert_eq!(empty.part_count, 1);
        assert_eq!(empty.part(1).unwrap().copy_source_range(), None);
    }

    proptest! {
        #[test]
        fn every_plan_obeys_s3s_limits(size in 0u64..=MAX_OBJECT_SIZE, preferred in 0u64..=6 * GIB) {
            let p = PartPlan::for_size(size, &PartSizing::with_preferred_part_size(preferred)).unwrap();
            prop_assert!(u64::from(p.part_count) <= MAX_PARTS);
            prop_assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p.part_size));
            let parts: Vec<_> = p.parts().collect();
            prop_assert_eq!(parts.iter().map(|r| r.size).sum::<u64>(), size);
            for w in parts.windows(2) {
                prop_assert_eq!(w[0].first_byte + w[0].size, w[1].first_byte);
                prop_assert_eq!(w[0].size, p.part_size);
            }
        }
    }
}
