//! What a transfer costs to run: Batch Operations fees, copy requests, KMS requests and
//! cross-region transfer. All prices sit in [`PRICES`], with the date they were read.

use serde::Serialize;

use crate::spec::{StorageClass, TransferSpec};

/// The price list Ferry uses: AWS public list prices for us-east-1 (US East, N. Virginia).
/// Other regions differ by a few percent; storage of the copies is not included.
pub struct PriceTable {
    pub as_of: &'static str,
    pub basis: &'static str,
    pub batch_job_usd: f64,
    pub batch_per_million_objects_usd: f64,
    pub kms_per_10k_requests_usd: f64,
    pub inter_region_per_gb_usd: f64,
    /// COPY/PUT request price per 1,000 requests, by destination storage class.
    pub put_per_1k_usd: &'static [(StorageClass, f64)],
}

pub const PRICES: PriceTable = PriceTable {
    as_of: "2025-06-01",
    basis: "AWS list prices, us-east-1; other regions differ",
    batch_job_usd: 0.25,
    batch_per_million_objects_usd: 1.00,
    kms_per_10k_requests_usd: 0.03,
    inter_region_per_gb_usd: 0.02,
    put_per_1k_usd: &[
        (StorageClass::Standard, 0.005),
        (StorageClass::IntelligentTiering, 0.005),
        (StorageClass::StandardIa, 0.01),
        (StorageClass::OnezoneIa, 0.01),
        (StorageClass::GlacierIr, 0.02),
        (StorageClass::Glacier, 0.03),
        (StorageClass::DeepArchive, 0.05),
    ],
};

/// With an S3 Bucket Key, S3 asks KMS for a bucket-level key that it reuses for many
/// objects; AWS quotes up to 99 % fewer requests. Ferry counts 1 request per 100 objects.
const BUCKET_KEY_REQUEST_RATIO: f64 = 0.01;
const BYTES_PER_GB: f64 = 1_073_741_824.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    pub prices_as_of: String,
    pub price_basis: String,
    /// `None` when the spec gives no `[estimate]`: only per-object rates can be stated then.
    pub object_count: Option<u64>,
    pub total_bytes: Option<u64>,
    pub line_items: Vec<CostLineItem>,
    /// Sum of the line items whose quantity is known.
    pub total_usd: f64,
    /// Cost of one million objects of average size 0 bytes (request-driven costs only).
    pub per_million_objects_usd: f64,
    pub assumptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLineItem {
    pub item: String,
    pub unit: String,
    pub unit_price_usd: f64,
    pub quantity: Option<f64>,
    pub cost_usd: Option<f64>,
}

pub fn estimate(spec: &TransferSpec) -> CostEstimate {
    let objects = spec.estimate.map(|e| e.object_count as f64);
    let bytes = spec.estimate.map(|e| e.total_bytes as f64);
    let storage_class = spec
        .destination
        .storage_class
        .unwrap_or(StorageClass::Standard);
    let put_price = PRICES
        .put_per_1k_usd
        .iter()
        .find(|(c, _)| *c == storage_class)
        .map_or(0.005, |(_, p)| *p);

    let mut items = Vec::new();
    let mut per_object_usd = 0.0;
    let mut add = |item: String,
                   unit: &str,
                   unit_price: f64,
                   per_object: Option<f64>,
                   quantity: Option<f64>| {
        if let Some(per_object) = per_object {
            per_object_usd += per_object;
        }
        items.push(CostLineItem {
            item,
            unit: unit.to_string(),
            unit_price_usd: unit_price,
            quantity,
            cost_usd: quantity.map(|q| round_cents(q * unit_price)),
        });
    };

    add(
        "Batch Operations job fee".into(),
        "job",
        PRICES.batch_job_usd,
        None,
        Some(1.0),
    );
    add(
        "Batch Operations objects processed".into(),
        "1M objects",
        PRICES.batch_per_million_objects_usd,
        Some(PRICES.batch_per_million_objects_usd / 1e6),
        objects.map(|n| n / 1e6),
    );
    add(
        format!("COPY requests into {}", storage_class.as_str()),
        "1K requests",
        put_price,
        Some(put_price / 1e3),
        objects.map(|n| n / 1e3),
    );
    let kms_unit = PRICES.kms_per_10k_requests_usd;
    if spec.source.kms_key_arn.is_some() {
        add(
            "KMS Decrypt on the source key".into(),
            "10K requests",
            kms_unit,
            Some(kms_unit / 1e4),
            objects.map(|n| n / 1e4),
        );
    }
    if spec.destination.kms_key_arn.is_some() {
        let ratio = if spec.destination.bucket_key_enabled {
            BUCKET_KEY_REQUEST_RATIO
        } else {
            1.0
        };
        add(
            "KMS GenerateDataKey on the destination key".into(),
            "10K requests",
            kms_unit,
            Some(kms_unit * ratio / 1e4),
            objects.map(|n| n * ratio / 1e4),
        );
    }
    if spec.source.region != spec.destination.region {
        add(
            format!(
                "Data transfer {} → {}",
                spec.source.region, spec.destination.region
            ),
            "GB",
            PRICES.inter_region_per_gb_usd,
            None,
            bytes.map(|b| b / BYTES_PER_GB),
        );
    }

    let total_usd = round_cents(items.iter().filter_map(|i| i.cost_usd).sum());
    let mut assumptions = vec![
        format!("Prices: {} (as of {}).", PRICES.basis, PRICES.as_of),
        "One COPY request per object (objects up to 5 GB); storage of the copies is not included."
            .to_string(),
        "Request and KMS charges are billed to the destination account, which makes the calls."
            .to_string(),
    ];
    if spec.source.kms_key_arn.is_some() {
        assumptions.push(
            "One KMS Decrypt per source object; fewer if the source objects were written with an S3 Bucket Key."
                .to_string(),
        );
    }
    if spec.destination.bucket_key_enabled {
        assumptions.push(
            "With the S3 Bucket Key on, 1 GenerateDataKey per 100 objects (AWS quotes up to 99 % fewer requests)."
                .to_string(),
        );
    }
    if spec.estimate.is_none() {
        assumptions.push(
            "No [estimate] in the spec: only the job fee is totalled; add object_count and total_bytes for a full figure."
                .to_string(),
        );
    }
    CostEstimate {
        prices_as_of: PRICES.as_of.to_string(),
        price_basis: PRICES.basis.to_string(),
        object_count: spec.estimate.map(|e| e.object_count),
        total_bytes: spec.estimate.map(|e| e.total_bytes),
        line_items: items,
        total_usd,
        per_million_objects_usd: round_cents(per_object_usd * 1e6),
        assumptions,
    }
}

fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EstimateSpec;

    fn spec() -> TransferSpec {
        TransferSpec::from_toml_str(
            r#"
name = "t"
[source]
account_id = "111111111111"
region = "us-east-1"
bucket = "src-bucket"
kms_key_arn = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
[destination]
account_id = "222222222222"
region = "eu-west-1"
bucket = "dst-bucket"
[manifest]
kind = "csv"
bucket = "dst-bucket"
account_id = "222222222222"
key = "m.csv"
[report]
bucket = "dst-bucket"
account_id = "222222222222"
prefix = "r"
"#,
        )
        .unwrap()
    }

    #[test]
    fn ten_million_objects_one_tib_cross_region() {
        let mut s = spec();
        s.estimate = Some(EstimateSpec {
            object_count: 10_000_000,
            total_bytes: 1 << 40,
        });
        let e = estimate(&s);
        // 0.25 job + 10 × 1.00 objects + 10,000 × 0.005 COPY + 1,000 × 0.03 KMS + 1,024 GB × 0.02
        let expected = 0.25 + 10.0 + 50.0 + 30.0 + 20.48;
        assert!((e.total_usd - expected).abs() < 0.005, "{}", e.total_usd);
        assert_eq!(e.line_items.len(), 5);
        // Per million: 1.00 + 5.00 + 3.00
        assert!((e.per_million_objects_usd - 9.0).abs() < 0.005);
    }

    #[test]
    fn without_counts_only_the_job_fee_is_totalled() {
        let e = estimate(&spec());
        assert_eq!(e.total_usd, 0.25);
        assert!(e.line_items[1..].iter().all(|i| i.cost_usd.is_none()));
    }
}
