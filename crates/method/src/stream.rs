//! Records streaming through a chain of stages (`run.streaming`): a
//! record's next stage is asked for as soon as its previous one is written,
//! and the requests of every stage share one backend call, later stages
//! first, so the engine's slots do not idle at each stage's tail and the
//! first finished pairs are on disk minutes after the start instead of at
//! the end.
//!
//! This is our scheduler around the model (no crate schedules LLM requests
//! across a dependent chain of prompts): it keeps the stage-by-stage
//! runner's contract — every result appended to its stage file with one
//! write before the next is handled, resume from the files by id and key,
//! the same per-request seeds and prompts — so with `model.batch_size = 1`
//! and `model.prefix_reuse = false` the exports are byte-identical to a
//! stage-by-stage run's.
//!
//! Work in memory is bounded: a stage's records come from its ready queue
//! (results of the stage it reads, in this run), then from its source (its
//! upstream file as it stood when the chain started, read lazily), later
//! stages first; a result adds at most one record per downstream stage (or
//! one per pair, [`crate::pairs`]), and the backend pulls a request only
//! when a slot is free, so the queues hold at most the in-flight requests'
//! children.

use crate::pairs::fan_out;
use crate::record::Record;
use crate::stages::{ProgressFn, StageReport, StageSpec};
use crate::store::StageFile;
use anyhow::{Context, Result};
use backforth_inference::{Backend, GenOutput};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

/// One stage of a streamed chain.
pub struct ChainStage<'a> {
    pub spec: StageSpec<'a>,
    /// Records read from files: the stage's upstream file as it stood when
    /// the chain started (for a stage fed by another stage of the chain:
    /// what that stage had written before, i.e. a resumed run's backlog).
    pub source: Box<dyn Iterator<Item = Record> + 'a>,
    /// The chain position of the stage whose results this one reads, when
    /// that stage runs in the chain too.
    pub fed_by: Option<usize>,
    /// Its stage file, opened under its key.
    pub file: StageFile,
}

/// What a streamed chain did.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    /// Per chain position, as the stage-by-stage runner reports a stage
    /// (`wall_s` is the chain's).
    pub stages: Vec<StageReport>,
    /// Seconds from the start to the first record written by a stage that
    /// feeds no other stage of the chain (the first finished pair).
    pub first_output_s: Option<f64>,
}

struct State<'a> {
    ready: Vec<VecDeque<Record>>,
    sources: Vec<Option<Box<dyn Iterator<Item = Record> + 'a>>>,
    done: Vec<HashSet<String>>,
    files: Vec<StageFile>,
    reports: Vec<StageReport>,
    inflight: HashMap<u64, (usize, Record)>,
    error: Option<anyhow::Error>,
    first_output_s: Option<f64>,
    answered: u64,
}

impl State<'_> {
    /// Offer a record to stage `j`: counted, and queued when it is not done
    /// and the stage applies to it.
    fn offer(&mut self, j: usize, spec: &StageSpec<'_>, r: Record) {
        let rep = &mut self.reports[j];
        rep.input += 1;
        if self.done[j].contains(&r.id) {
            rep.resumed += 1;
        } else if !spec.def.eligible(&r, spec.cfg) {
            rep.not_eligible += 1;
        } else {
            self.ready[j].push_back(r);
        }
    }

    /// The next record to send: ready records of the latest stage first,
    /// then sources from the latest stage back. `None`: nothing right now.
    fn next(&mut self, specs: &[StageSpec<'_>]) -> Option<(usize, Record)> {
        loop {
            if let Some(j) = (0..self.ready.len()).rev().find(|&j| !self.ready[j].is_empty()) {
                return self.ready[j].pop_front().map(|r| (j, r));
            }
            let j = (0..self.sources.len()).rev().find(|&j| self.sources[j].is_some())?;
            match self.sources[j].as_mut().and_then(|s| s.next()) {
                Some(r) => self.offer(j, &specs[j], r),
                None => self.sources[j] = None,
            }
        }
    }

    fn idle(&self) -> bool {
        self.ready.iter().all(VecDeque::is_empty) && self.sources.iter().all(Option::is_none)
    }
}

/// Run the chain `stages` (in plan order: a stage after the one it reads)
/// on one backend until every record has gone as far as it can. Records
/// already done under a stage's key are skipped; results are appended to
/// the stage files as they come. `progress` gets (records answered by the
/// first stage of the chain, prompt tokens and generated tokens of all
/// stages, seconds): with later stages served first, records enter the
/// chain only as fast as the whole chain moves, so the first stage's count
/// is the run's progress.
/// Errors: I/O on a stage file, template rendering, fatal backend errors.
pub fn run_chain(
    stages: Vec<ChainStage<'_>>,
    backend: &mut dyn Backend,
    progress: &mut ProgressFn<'_>,
) -> Result<ChainReport> {
    let start = Instant::now();
    let n = stages.len();
    let mut specs = Vec::with_capacity(n);
    let mut fed_by = Vec::with_capacity(n);
    let mut state = State {
        ready: (0..n).map(|_| VecDeque::new()).collect(),
        sources: Vec::with_capacity(n),
        done: Vec::with_capacity(n),
        files: Vec::with_capacity(n),
        reports: vec![StageReport::default(); n],
        inflight: HashMap::new(),
        error: None,
        first_output_s: None,
        answered: 0,
    };
    for mut s in stages {
        state.done.push(std::mem::take(&mut s.file.done));
        state.files.push(s.file);
        state.sources.push(Some(s.source));
        fed_by.push(s.fed_by);
        specs.push(s.spec);
    }
    let consumers: Vec<Vec<usize>> = (0..n).map(|i| (0..n).filter(|&j| fed_by[j] == Some(i)).collect()).collect();
    let state = RefCell::new(state);
    let (mut tag, mut prompt_tokens, mut completion_tokens) = (0u64, 0u64, 0u64);
    let mut requests = std::iter::from_fn(|| {
        let mut st = state.borrow_mut();
        if st.error.is_some() {
            return None;
        }
        let (j, r) = st.next(&specs)?;
        tag += 1;
        match specs[j].request(&r, tag) {
            Ok(req) => {
                st.inflight.insert(tag, (j, r));
                Some(req)
            }
            Err(e) => {
                st.error = Some(e.context(format!("building the {} prompt for record {}", specs[j].def.name, r.id)));
                None
            }
        }
    });
    let mut sink = |tag: u64, res: Result<GenOutput, String>| -> Result<()> {
        let mut st = state.borrow_mut();
        let (i, mut r) = st.inflight.remove(&tag).context("backend returned an unknown request tag")?;
        let reused = res.as_ref().map(|o| o.cached_prompt_tokens.min(o.prompt_tokens)).unwrap_or(0);
        let g = specs[i].interpret(&r, res);
        st.answered += 1;
        prompt_tokens += g.prompt_tokens as u64;
        completion_tokens += g.completion_tokens as u64;
        st.reports[i].count(&g, reused);
        r.set_generation(&specs[i].def.name, g);
        st.files[i].append(&r)?;
        if consumers[i].is_empty() && st.first_output_s.is_none() {
            st.first_output_s = Some(start.elapsed().as_secs_f64());
        }
        for &j in &consumers[i] {
            for c in fan_out(r.clone()) {
                st.offer(j, &specs[j], c);
            }
        }
        let entered = st.reports[0].generated;
        drop(st);
        progress(entered, prompt_tokens, completion_tokens, start.elapsed().as_secs_f64());
        Ok(())
    };
    // A backend that stops pulling after its first `None` (nothing ready
    // while requests are in flight) is called again for what their results
    // made ready; the embedded engine and the HTTP client ask again by
    // themselves, so for them this runs once.
    loop {
        let before = state.borrow().answered;
        backend.generate(&mut requests, &mut sink)?;
        let st = state.borrow();
        if st.error.is_some() || st.idle() || st.answered == before {
            break;
        }
    }
    drop(requests);
    let mut st = state.into_inner();
    if let Some(e) = st.error.take() {
        return Err(e);
    }
    let wall = start.elapsed().as_secs_f64();
    let mut pending: HashMap<usize, u64> = HashMap::new();
    for (i, _) in st.inflight.values() {
        *pending.entry(*i).or_default() += 1;
    }
    for (i, rep) in st.reports.iter_mut().enumerate() {
        rep.left_pending = pending.get(&i).copied().unwrap_or(0);
        rep.wall_s = wall;
        if wall > 0.0 {
            rep.completion_tokens_per_s = rep.completion_tokens as f64 / wall;
            rep.total_tokens_per_s = (rep.completion_tokens + rep.prompt_tokens) as f64 / wall;
        }
    }
    Ok(ChainReport { stages: st.reports, first_output_s: st.first_output_s })
}
