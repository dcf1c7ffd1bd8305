//! Properties of CSV manifests: any key S3 can hold survives encode → write → check → read →
//! decode unchanged, and no input, however broken, makes the checker or the reader panic.

use ferry_listings::manifest::{
    check_csv_manifest, decode_event_key, decode_inventory_key, decode_key, encode_key,
    CheckOptions, CsvManifestReader, CsvManifestWriter, ManifestRow, MAX_KEY_BYTES,
};
use proptest::prelude::*;

/// Characters that break naive manifests, plain letters, and anything at all.
fn key_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        3 => prop::sample::select(vec![
            ' ', '+', '%', ',', '"', '\n', '\r', '\t', '/', '~', '.', '-', '_', '#', '?', '&',
            '=', '\\', '\'', '*', '\0', '\u{7f}', 'é', '日', '本', '😀', '\u{feff}',
        ]),
        1 => any::<char>(),
    ]
}

/// Keys of 1 to 1024 bytes, some with leading or trailing spaces.
fn key() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        3 => prop::collection::vec(key_char(), 1..40),
        1 => prop::collection::vec(key_char(), 250..1100),
    ];
    (chars, any::<bool>(), any::<bool>()).prop_map(|(chars, lead, trail)| {
        let mut key: String = chars.into_iter().collect();
        if lead {
            key.insert(0, ' ');
        }
        if trail {
            key.push(' ');
        }
        let mut cut = key.len().min(MAX_KEY_BYTES);
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
        key
    })
}

/// Version ids as S3 makes them, plus the two spellings of a null version.
fn version_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[A-Za-z0-9._]{32}".prop_map(Some),
        1 => Just(None),
        1 => Just(Some(String::new())),
    ]
}

fn bucket() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["photos-src", "a.b-c", "x1y", "ledger-archive-2024"])
        .prop_map(String::from)
}

proptest! {
    // Cheap: many cases.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn keys_round_trip_through_every_decoder(key in key()) {
        let encoded = encode_key(&key);
        prop_assert!(
            encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)),
            "{encoded}"
        );
        prop_assert_eq!(decode_key(&encoded), Ok(key.clone()));
        // Ferry's encoding has no raw `+`, so inventory readers agree with it.
        prop_assert_eq!(decode_inventory_key(&encoded), Ok(key.clone()));
        // An event's form encoding writes a space as `+`.
        let form = encoded.replace("%20", "+");
        prop_assert_eq!(decode_event_key(&form), Ok(key));
    }
}

proptest! {
    // Each case is a whole manifest of up to 30 keys (some near 1024 bytes): fewer cases keep
    // the debug-build test under a few seconds.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn written_manifests_check_clean_and_read_back(
        bucket in bucket(),
        with_versions in any::<bool>(),
        objects in prop::collection::vec((key(), version_id()), 1..30),
    ) {
        let rows: Vec<ManifestRow> = objects
            .into_iter()
            .map(|(key, version_id)| ManifestRow {
                bucket: bucket.clone(),
                key,
                version_id: if with_versions { version_id } else { None },
            })
            .collect();

        let mut writer = CsvManifestWriter::new(Vec::new(), with_versions);
        for row in &rows {
            writer.write_row(row).expect("every generated row is valid");
        }
        let (bytes, counts) = writer.finish().unwrap();
        prop_assert_eq!(counts.rows, rows.len() as u64);
        prop_assert_eq!(counts.bytes, bytes.len() as u64);

        let text = std::str::from_utf8(&bytes).expect("manifests are UTF-8");
        prop_assert!(text.ends_with('\n') && !text.contains("\n\n") && !text.contains('\r'));
        let columns = if with_versions { 3 } else { 2 };
        for line in text.lines() {
            prop_assert_eq!(line.split(',').count(), columns, "{}", line);
            if with_versions {
                prop_assert!(!line.ends_with(','), "an empty version is written as null");
            }
        }

        let report = check_csv_manifest(
            &bytes[..],
            CheckOptions { bucket: Some(bucket.clone()), version_ids: Some(with_versions) },
        )
        .unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}\n{}", report.problems, text);
        prop_assert_eq!(report.rows, rows.len() as u64);
        prop_assert_eq!(report.has_version_ids, Some(with_versions));

        let read: Vec<ManifestRow> = CsvManifestReader::new(&bytes[..])
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<ManifestRow> = rows
            .into_iter()
            .map(|mut row| {
                // A null version is written as `null` and read back as None.
                if matches!(row.version_id.as_deref(), Some("" | "null")) {
                    row.version_id = None;
                }
                row
            })
            .collect();
        prop_assert_eq!(read, expected);
    }

    #[test]
    fn no_input_makes_the_checker_or_reader_panic(
        bytes in prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(b"ab-,\"%+ \n\r\t\xEF\xBB\xBF\xFF\xC3\xA9bucketkeynull".to_vec()),
                1 => any::<u8>(),
            ],
            0..3000,
        ),
        bucket in prop::option::of(bucket()),
        version_ids in prop::option::of(any::<bool>()),
    ) {
        let expect = CheckOptions { bucket, version_ids };
        let report = check_csv_manifest(&bytes[..], expect.clone()).unwrap();
        let lines = bytes.split(|&b| b == b'\n').count() as u64;
        prop_assert!(report.rows <= lines);
        prop_assert!(report.problems.iter().all(|p| p.line >= 1 && p.line <= lines.max(1)));
        prop_assert_eq!(
            report.errors + report.warnings,
            report.problems.len() as u64 + report.omitted
        );
        let rows_read = CsvManifestReader::with_options(&bytes[..], expect)
            .filter(|r| r.is_ok())
            .count();
        prop_assert!(rows_read as u64 <= report.rows);
        if report.is_ok() {
            prop_assert_eq!(rows_read as u64, report.rows);
        }
    }
}
