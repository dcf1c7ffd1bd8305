//! Requests, parallelism and time per object size under Ferry's part-size plan, from a model of
//! UploadPartCopy (`scripts/bench-large-copy`). Each part costs a fixed latency plus its bytes
//! at a per-request server-side rate; `parallelism` parts are in flight; an invocation stops
//! starting parts when `reserve` of its 900 s is left. Rates are assumptions (arguments), not
//! measurements of AWS: `bench_large_copy [MB/s per request] [parallelism]`.

use std::time::Duration;

use ferry_flows::large_object::copy::CopyTuning;
use ferry_flows::large_object::parts::{PartPlan, GIB, MIB, TIB};

fn main() {
    let mut args = std::env::args().skip(1);
    let rate_mb_s: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(80.0);
    let tuning = CopyTuning::default();
    let parallelism: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(tuning.parallelism);
    let latency = Duration::from_millis(150).as_secs_f64();
    let budget = 900.0 - tuning.reserve.as_secs_f64();
    println!(
        "model: {rate_mb_s} MB/s per UploadPartCopy, {parallelism} in flight, 150 ms per request, {budget:.0} s usable per invocation"
    );
    println!(
        "{:>10} {:>10} {:>7} {:>9} {:>10} {:>9} {:>12}",
        "size", "part", "parts", "requests", "time (s)", "GB/s", "invocations"
    );
    for size in [5 * GIB + 1, 50 * GIB, 500 * GIB, TIB, 5 * TIB] {
        let plan = PartPlan::for_size(size, &tuning.sizing).expect("within 5 TiB");
        let part_s = latency + plan.part_size as f64 / (rate_mb_s * 1e6);
        let waves = (plan.part_count as f64 / parallelism as f64).ceil();
        let seconds = waves * part_s;
        // Parts started per invocation: whole waves that fit in the usable time.
        let waves_per_invocation = (budget / part_s).floor().max(1.0);
        let invocations = (waves / waves_per_invocation).ceil();
        // Head, tags, list uploads (+ list parts on resume), create, parts, complete, head.
        let requests = plan.part_count as f64 + 5.0 + 2.0 * (invocations - 1.0);
        println!(
            "{:>8.1}Gi {:>7}MiB {:>7} {:>9} {:>10.0} {:>9.2} {:>12}",
            size as f64 / GIB as f64,
            plan.part_size / MIB,
            plan.part_count,
            requests,
            seconds,
            size as f64 / seconds / 1e9,
            invocations
        );
    }
}
