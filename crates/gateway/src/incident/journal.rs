//! The incident journal: history that survives a restart. One JSON line per change of an
//! incident (opened, updated, resolved), appended to `STATE_DIR/incidents.jsonl` by a
//! thread of its own, so that no task of the gateway ever waits on the disk: the incident
//! task hands lines over a bounded channel, and a line that finds it full is dropped and
//! counted (the next change of that incident carries all of it again).
//!
//! On start the journal is read back: the last line of each incident wins; those past
//! retention are left out. When the file holds four times more lines than incidents kept
//! (and at least 1000), it is rewritten with one line per incident, to a new file renamed
//! over the old one, so a crash never leaves half a journal.

use super::record::Incident;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines waiting for the disk at most.
const QUEUE: usize = 1024;

/// Writes incident changes to the journal file.
pub(crate) struct Journal {
    tx: SyncSender<Incident>,
    /// Lines dropped because the writer fell behind.
    pub(crate) dropped: Arc<AtomicU64>,
}

impl Journal {
    /// Opens (creating) `dir/incidents.jsonl`; returns the journal and the incidents it
    /// held, newest last, within `retention_ms` of `now` (unix ms).
    pub(crate) fn open(dir: &Path, now: u64, retention_ms: u64) -> std::io::Result<(Journal, Vec<Incident>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("incidents.jsonl");
        let (loaded, lines) = read(&path, now, retention_ms);
        let (tx, rx) = sync_channel::<Incident>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut writer = Writer { path, lines, latest: loaded.iter().map(|i| (i.id.clone(), i.clone())).collect() };
        writer.compact_if_needed()?;
        std::thread::Builder::new().name("holdfast-journal".into()).spawn(move || {
            while let Ok(i) = rx.recv() {
                if let Err(e) = writer.append(i) {
                    tracing::error!(error = %e, path = %writer.path.display(), "cannot write the incident journal");
                }
            }
        })?;
        Ok((Journal { tx, dropped }, loaded))
    }

    /// Records an incident's state (never blocks).
    pub(crate) fn record(&self, i: &Incident) {
        match self.tx.try_send(i.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

struct Writer {
    path: PathBuf,
    /// Lines in the file now.
    lines: usize,
    /// The latest state of every incident in it.
    latest: BTreeMap<String, Incident>,
}

impl Writer {
    fn append(&mut self, i: Incident) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&i).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(&line)?;
        self.lines += 1;
        self.latest.insert(i.id.clone(), i);
        self.compact_if_needed()
    }

    fn compact_if_needed(&mut self) -> std::io::Result<()> {
        if self.lines < 1000 || self.lines < 4 * self.latest.len() {
            return Ok(());
        }
        let tmp = self.path.with_extension("jsonl.new");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut by_start: Vec<&Incident> = self.latest.values().collect();
            by_start.sort_by_key(|i| i.started_at);
            for i in by_start {
                serde_json::to_writer(&mut f, i).map_err(std::io::Error::other)?;
                f.write_all(b"\n")?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.lines = self.latest.len();
        Ok(())
    }
}

/// The incidents in a journal file (the last line of each), and how many lines it has.
/// Lines that do not parse (a torn last line after a crash) are skipped.
fn read(path: &Path, now: u64, retention_ms: u64) -> (Vec<Incident>, usize) {
    let Ok(f) = std::fs::File::open(path) else { return (Vec::new(), 0) };
    let mut latest: BTreeMap<String, Incident> = BTreeMap::new();
    let mut lines = 0;
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        lines += 1;
        match serde_json::from_str::<Incident>(&line) {
            Ok(i) => {
                latest.insert(i.id.clone(), i);
            }
            Err(e) => tracing::warn!(error = %e, path = %path.display(), line = lines, "skipping a journal line"),
        }
    }
    let keep_from = now.saturating_sub(retention_ms);
    let mut list: Vec<Incident> =
        latest.into_values().filter(|i| i.resolved_at.is_none_or(|r| r >= keep_from)).collect();
    list.sort_by_key(|i| i.started_at);
    (list, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::detect::{Change, Finding, Key};
    use crate::incident::signals::Observation;
    use crate::incident::{Facts, Incidents, Kind};
    use crate::telemetry::Telemetry;

    fn some_incident(store: &Incidents, t: u64) -> Incident {
        let finding = Finding {
            key: Key { kind: Kind::Flood, scope: "*".into() },
            sites: vec!["shop-de".into()],
            datacenters: Vec::new(),
            facts: Facts { peak_rps: Some(600.0), sources: Some(30), ..Facts::default() },
            evidence: Vec::new(),
            confidence: 0.9,
        };
        let obs = Observation { now: t, secs: 1.0, ..Observation::default() };
        let out = store.apply(vec![Change::Open { finding, since: t }], &obs, &BTreeMap::new());
        out.into_iter().next().map(|(_, i)| i).unwrap()
    }

    #[test]
    fn incidents_survive_a_restart_and_old_ones_are_left_out() {
        let dir = std::env::temp_dir().join(format!("holdfast-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Incidents::new(Arc::new(Telemetry::new()), Vec::new(), u64::MAX, 100);
        {
            let (j, loaded) = Journal::open(&dir, 1_000_000, 3_600_000).unwrap();
            assert!(loaded.is_empty());
            let mut i = some_incident(&store, 1_000_000);
            j.record(&i);
            i.summary = "updated".into();
            j.record(&i);
            let mut old = i.clone();
            old.id = "old".into();
            old.resolved_at = Some(1);
            j.record(&old);
            drop(j);
        }
        // The writer thread finishes with the channel: wait until the lines are there.
        let path = dir.join("incidents.jsonl");
        for _ in 0..500 {
            if std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() == 3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // A torn line at the end (a crash mid-write) is skipped.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\": \"torn").unwrap();
        let (_, loaded) = Journal::open(&dir, 10_000_000, 3_600_000).unwrap();
        assert_eq!(loaded.len(), 1, "the resolved one from long ago is past retention");
        assert_eq!(loaded[0].summary, "updated", "the last line of an incident wins");
        assert_eq!(loaded[0].facts.peak_rps, Some(600.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_long_journal_is_compacted_to_one_line_per_incident() {
        let dir = std::env::temp_dir().join(format!("holdfast-journal-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Incidents::new(Arc::new(Telemetry::new()), Vec::new(), u64::MAX, 100);
        let i = some_incident(&store, 1_000_000);
        let mut w = Writer { path: dir.join("incidents.jsonl"), lines: 0, latest: BTreeMap::new() };
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..1000 {
            let mut x = i.clone();
            x.summary = format!("update {n}");
            w.append(x).unwrap();
        }
        let text = std::fs::read_to_string(dir.join("incidents.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("update 999"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
