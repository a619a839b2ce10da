//! `junction dedupe evaluate`: load records into a scratch store, read the clustering back
//! from the source records and score it pairwise against a truth file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

use crate::config::Config;
use crate::identity::evaluate::{pairwise, PairwiseScore};
use crate::ingest::{import_file, ImportFormat, ImportSummary};

/// Read a `record_id,cluster` CSV with a header row.
pub fn read_clusters(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = HashMap::new();
    for row in rdr.records() {
        let row = row.with_context(|| format!("bad row in {}", path.display()))?;
        if let (Some(a), Some(b)) = (row.get(0), row.get(1)) {
            out.insert(a.to_string(), b.to_string());
        }
    }
    Ok(out)
}

pub struct Evaluation {
    pub import: ImportSummary,
    pub score: PairwiseScore,
    pub seconds: f64,
}

/// Import `input` into the store `config` points at (a scratch store), then score.
pub async fn evaluate(
    config: &Config,
    input: &Path,
    truth: &Path,
    predicted_out: Option<&Path>,
) -> anyhow::Result<Evaluation> {
    let truth = read_clusters(truth)?;
    let start = std::time::Instant::now();
    let store = crate::open_store(config, true).await?;
    let extractor = crate::key_extractor(config)?;
    let f = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let size = f.metadata().ok().map(|m| m.len());
    let import = import_file(&store, &extractor, f, ImportFormat::from_path(input), size, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("import failed: {e}"))?;
    let clusters = store.record_clusters().await?;
    let seconds = start.elapsed().as_secs_f64();
    let predicted: HashMap<String, String> = clusters.into_iter().map(|(r, c)| (r, c.to_string())).collect();
    if let Some(out) = predicted_out {
        let mut w = csv::Writer::from_path(out).with_context(|| format!("cannot create {}", out.display()))?;
        w.write_record(["record_id", "cluster_id"])?;
        let mut rows: Vec<_> = predicted.iter().collect();
        rows.sort();
        for (r, c) in rows {
            w.write_record([r, c])?;
        }
        w.flush()?;
    }
    Ok(Evaluation { import, score: pairwise(&truth, &predicted), seconds })
}

/// Latency of resolving single records online against the store `config` points at.
pub struct OnlineLatency {
    pub records: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Ingest up to `count` records of `input` one at a time (each its own transaction, as a
/// webhook would) and report latency percentiles. Records re-sent from an import attach to
/// the customers they resolved to, which is the common online case.
pub async fn online_latency(config: &Config, input: &Path, count: usize) -> anyhow::Result<OnlineLatency> {
    use std::io::BufRead;
    let store = crate::open_store(config, true).await?;
    let extractor = crate::key_extractor(config)?;
    let f = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut times = Vec::with_capacity(count);
    for line in std::io::BufReader::new(f).lines().take(count) {
        let line = line?;
        let Ok(rec) = serde_json::from_str::<crate::ingest::FlatRecord>(&line) else { continue };
        let Ok(mut obs) = rec.into_observation() else { continue };
        obs.record_id = obs.record_id.map(|r| format!("{r}-online"));
        let start = std::time::Instant::now();
        store.ingest(&extractor, &obs, None).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    Ok(OnlineLatency { records: times.len(), p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: pct(1.0) })
}
