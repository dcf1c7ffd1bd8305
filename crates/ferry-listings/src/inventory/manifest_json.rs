//! The inventory's `manifest.json`: which bucket it lists, its format, its columns and its data
//! files. Read field by field so that every problem is reported at once, each naming the field.

use serde::Serialize;
use serde_json::Value;

pub use crate::inventory::file_format::FileFormat;
use crate::inventory::row::InventoryError;
use ferry_plan::aws_names::check_bucket_name;
use ferry_plan::inventory_fields::Column;

/// One data file of the report (`files[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryFile {
    /// Key in the inventory's destination bucket.
    pub key: String,
    pub size: u64,
    #[serde(rename = "MD5checksum")]
    pub md5_checksum: String,
}

/// The columns of the data files, in order, as `fileSchema` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventorySchema {
    /// Every name as written.
    names: Vec<String>,
    /// The column each position holds; `None` for one Ferry doesn't know (ignored).
    #[serde(skip)]
    columns: Vec<Option<Column>>,
}

impl InventorySchema {
    /// From the names in order. Unknown names are kept (their values are skipped); a name given
    /// twice, or no Bucket or Key column, is an error.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut columns: Vec<Option<Column>> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let column = Column::from_name(name);
            if let Some(c) = column {
                if columns.contains(&Some(c)) {
                    problems.push(format!("fileSchema names the column {c} twice"));
                }
            }
            columns.push(column);
        }
        for required in [Column::Bucket, Column::Key] {
            if !columns.contains(&Some(required)) {
                problems.push(format!(
                    "fileSchema has no {required} column: every inventory lists Bucket and Key"
                ));
            }
        }
        if problems.is_empty() {
            Ok(Self {
                names: names.iter().map(|n| n.as_ref().to_string()).collect(),
                columns,
            })
        } else {
            Err(problems)
        }
    }

    /// Parses a `fileSchema`: comma-separated names for CSV (`Bucket, Key, Size`), a Parquet
    /// message type (`message s3.inventory { required binary bucket (UTF8); … }`) or an ORC
    /// struct (`struct<bucket:string,key:string,…>`).
    pub fn parse(format: FileFormat, file_schema: &str) -> Result<Self, Vec<String>> {
        let names = match format {
            FileFormat::Csv => file_schema
                .split(',')
                .map(|n| n.trim().to_string())
                .collect::<Vec<_>>(),
            FileFormat::Parquet => parquet_names(file_schema)?,
            FileFormat::Orc => orc_names(file_schema)?,
        };
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(vec![format!(
                "fileSchema {file_schema:?} has an empty column name at position {}",
                i + 1
            )]);
        }
        Self::from_names(&names)
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The known column at each position.
    pub fn columns(&self) -> &[Option<Column>] {
        &self.columns
    }

    pub fn position(&self, column: Column) -> Option<usize> {
        self.columns.iter().position(|c| *c == Some(column))
    }

    pub fn has(&self, column: Column) -> bool {
        self.position(column).is_some()
    }
}

/// `message s3.inventory { required binary bucket (UTF8); optional int64 size; … }`: the name
/// is the third word of each field, before any `(annotation)`.
fn parquet_names(schema: &str) -> Result<Vec<String>, Vec<String>> {
    let body = schema
        .find('{')
        .zip(schema.rfind('}'))
        .filter(|(open, close)| open < close)
        .map(|(open, close)| &schema[open + 1..close])
        .ok_or_else(|| {
            vec![format!(
                "fileSchema {:?} is not a Parquet message type (message s3.inventory {{ … }})",
                shorten(schema)
            )]
        })?;
    let mut names = Vec::new();
    for field in body.split(';').map(str::trim).filter(|f| !f.is_empty()) {
        match field.split_whitespace().nth(2) {
            Some(word) => names.push(word.split('(').next().unwrap_or(word).to_string()),
            None => {
                return Err(vec![format!(
                    "fileSchema field {field:?} is not `<repetition> <type> <name>`"
                )])
            }
        }
    }
    Ok(names)
}

/// `struct<bucket:string,key:string,size:bigint,…>`.
fn orc_names(schema: &str) -> Result<Vec<String>, Vec<String>> {
    let body = schema
        .trim()
        .strip_prefix("struct<")
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| {
            vec![format!(
                "fileSchema {:?} is not an ORC struct (struct<bucket:string,…>)",
                shorten(schema)
            )]
        })?;
    Ok(body
        .split(',')
        .map(|f| f.split(':').next().unwrap_or(f).trim().to_string())
        .collect())
}

/// A parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryManifest {
    /// The bucket the inventory lists.
    pub source_bucket: String,
    /// ARN of the bucket the report was written to (`arn:aws:s3:::name`).
    pub destination_bucket: String,
    pub version: String,
    /// When S3 began the scan, in milliseconds since the Unix epoch.
    pub creation_timestamp_ms: u64,
    pub file_format: FileFormat,
    /// `fileSchema` as written.
    pub file_schema: String,
    pub schema: InventorySchema,
    pub files: Vec<InventoryFile>,
}

/// Why a `manifest.json` can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestJsonError {
    #[error("manifest.json is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("manifest.json has {} problem{}:\n  - {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl InventoryManifest {
    /// Reads a `manifest.json`, reporting every missing or wrong field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestJsonError> {
        let value: Value = serde_json::from_slice(bytes)?;
        let Some(obj) = value.as_object() else {
            return Err(ManifestJsonError::Invalid(vec![
                "manifest.json is not a JSON object".into(),
            ]));
        };
        let mut problems = Vec::new();
        let text =
            |name: &str, problems: &mut Vec<String>| required_text(obj.get(name), name, problems);

        let source_bucket = text("sourceBucket", &mut problems);
        if let Some(b) = &source_bucket {
            if let Err(why) = check_bucket_name(b) {
                problems.push(format!("sourceBucket {b:?}: {why}"));
            }
        }
        let destination_bucket = text("destinationBucket", &mut problems);
        if let Some(arn) = &destination_bucket {
            if bucket_from_arn(arn).is_none() {
                problems.push(format!(
                    "destinationBucket {arn:?} is not a bucket ARN (arn:aws:s3:::bucket-name)"
                ));
            }
        }
        let version = text("version", &mut problems);
        // AWS writes the epoch milliseconds as a string; a number is read too.
        let creation_timestamp_ms = match obj.get("creationTimestamp") {
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u64>().ok()
            }
            Some(Value::Number(n)) => n.as_u64(),
            None => None,
            Some(_) => None,
        };
        match (obj.get("creationTimestamp"), creation_timestamp_ms) {
            (None, _) => problems.push("creationTimestamp is missing".into()),
            (Some(v), None) => problems.push(format!(
                "creationTimestamp {v} is not milliseconds since the epoch (e.g. \"1514944800000\")"
            )),
            _ => {}
        }
        let file_format = match text("fileFormat", &mut problems) {
            Some(f) if f.eq_ignore_ascii_case("csv") => Some(FileFormat::Csv),
            Some(f) if f.eq_ignore_ascii_case("orc") => Some(FileFormat::Orc),
            Some(f) if f.eq_ignore_ascii_case("parquet") => Some(FileFormat::Parquet),
            Some(f) => {
                problems.push(format!("fileFormat {f:?} is not CSV, ORC or Parquet"));
                None
            }
            None => None,
        };
        let file_schema = text("fileSchema", &mut problems);
        let schema = match (file_format, &file_schema) {
            (Some(format), Some(s)) => match InventorySchema::parse(format, s) {
                Ok(schema) => Some(schema),
                Err(mut p) => {
                    problems.append(&mut p);
                    None
                }
            },
            _ => None,
        };
        let files = match obj.get("files") {
            Some(Value::Array(items)) => {
                let mut files = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(f) = parse_file(i, item, &mut problems) {
                        files.push(f);
                    }
                }
                Some(files)
            }
            Some(other) => {
                problems.push(format!("files is {}, not an array", kind(other)));
                None
            }
            None => {
                problems.push("files is missing".into());
                None
            }
        };

        match (
            source_bucket,
            destination_bucket,
            version,
            creation_timestamp_ms,
            file_format,
            file_schema,
            schema,
            files,
        ) {
            (
                Some(source_bucket),
                Some(destination_bucket),
                Some(version),
                Some(creation_timestamp_ms),
                Some(file_format),
                Some(file_schema),
                Some(schema),
                Some(files),
            ) if problems.is_empty() => Ok(Self {
                source_bucket,
                destination_bucket,
                version,
                creation_timestamp_ms,
                file_format,
                file_schema,
                schema,
                files,
            }),
            _ => Err(ManifestJsonError::Invalid(problems)),
        }
    }

    /// The bucket name in `destinationBucket`.
    pub fn destination_bucket_name(&self) -> &str {
        bucket_from_arn(&self.destination_bucket).unwrap_or(&self.destination_bucket)
    }

    /// Whether rows carry version ids (an inventory of all versions).
    pub fn has_version_ids(&self) -> bool {
        self.schema.has(Column::VersionId)
    }

    /// The error a reader of `expected` gives for this manifest, if any.
    pub(crate) fn expect_format(
        &self,
        file: &str,
        expected: FileFormat,
    ) -> Result<(), InventoryError> {
        if self.file_format == expected {
            Ok(())
        } else {
            Err(InventoryError::WrongFormat {
                file: file.to_string(),
                actual: self.file_format,
                expected,
            })
        }
    }
}

/// A field that must be a non-empty string; otherwise a problem naming it (`label`).
fn required_text(value: Option<&Value>, label: &str, problems: &mut Vec<String>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            problems.push(format!("{label} is empty"));
            None
        }
        Some(other) => {
            problems.push(format!("{label} is {}, not a string", kind(other)));
            None
        }
        None => {
            problems.push(format!("{label} is missing"));
            None
        }
    }
}

fn parse_file(i: usize, item: &Value, problems: &mut Vec<String>) -> Option<InventoryFile> {
    let Some(obj) = item.as_object() else {
        problems.push(format!("files[{i}] is {}, not an object", kind(item)));
        return None;
    };
    let key = required_text(obj.get("key"), &format!("files[{i}].key"), problems);
    let size = match obj.get("size") {
        Some(v) => {
            let n = v.as_u64();
            if n.is_none() {
                problems.push(format!("files[{i}].size {v} is not a byte count"));
            }
            n
        }
        None => {
            problems.push(format!("files[{i}].size is missing"));
            None
        }
    };
    // Kept for whoever verifies downloads; an absent checksum is not a reason to refuse.
    let md5_checksum = obj
        .get("MD5checksum")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(InventoryFile {
        key: key?,
        size: size?,
        md5_checksum,
    })
}

fn bucket_from_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("s3:::")?;
    (partition.starts_with("aws") && !name.is_empty() && !name.contains('/')).then_some(name)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A Parquet or ORC data file must have every column `manifest.json`'s `fileSchema` lists: routing
/// and the filter were checked against those, and a row lacking one would silently lack the value.
pub(crate) fn check_file_columns(
    manifest: &InventoryManifest,
    file_key: &str,
    has: impl Fn(Column) -> bool,
) -> Result<(), InventoryError> {
    let missing: Vec<&str> = manifest
        .schema
        .columns()
        .iter()
        .flatten()
        .filter(|c| !has(**c))
        .map(|c| c.snake_name())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(InventoryError::Schema {
        file: file_key.to_string(),
        message: format!(
            "manifest.json's fileSchema lists {} but the file has no such column: the file is \
             damaged or belongs to another inventory report",
            missing.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_and_orc_schemas() {
        let p = InventorySchema::parse(
            FileFormat::Parquet,
            "message s3.inventory {  required binary bucket (STRING);  required binary key \
             (STRING);  optional int64 last_modified_date (TIMESTAMP(MILLIS,true));  optional \
             binary e_tag (UTF8); optional binary whatever (UTF8);}",
        )
        .unwrap();
        assert_eq!(
            p.columns(),
            [
                Some(Column::Bucket),
                Some(Column::Key),
                Some(Column::LastModifiedDate),
                Some(Column::ETag),
                None
            ]
        );
        let o = InventorySchema::parse(
            FileFormat::Orc,
            "struct<bucket:string,key:string,size:bigint>",
        )
        .unwrap();
        assert_eq!(o.position(Column::Size), Some(2));
        assert!(InventorySchema::parse(FileFormat::Parquet, "bucket, key").is_err());
        assert!(InventorySchema::parse(FileFormat::Orc, "bucket, key").is_err());
    }

    #[test]
    fn arn_bucket() {
        assert_eq!(bucket_from_arn("arn:aws:s3:::inv"), Some("inv"));
        assert_eq!(bucket_from_arn("arn:aws-cn:s3:::inv"), Some("inv"));
        assert_eq!(bucket_from_arn("inv"), None);
        assert_eq!(bucket_from_arn("arn:aws:s3:::"), None);
    }
}
