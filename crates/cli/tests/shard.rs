//! Sharded runs of the real test model on real documents, against a
//! single-process run of the same config (batch size 1, prefix reuse off —
//! the two settings under which a run is bit-reproducible):
//! - local processes: a shard killed with SIGKILL mid-stage, `status`
//!   naming it stopped, `merge` refusing, the shard relaunched (it resumes),
//!   a finished shard skipped, the merged exports byte-identical;
//! - a real single-node Slurm (munged, slurmctld, slurmd started here and
//!   stopped by PID): `backforth slurm submit` of 4 shards, one array task
//!   cancelled while it runs, `slurm submit --missing` relaunching only that
//!   rank with a new afterok merge job, the merged exports byte-identical;
//!   the first submission chains dedup across shards (sign array, cluster
//!   job) before the shards;
//! - the run folder in S3 (moto) under the same Slurm: scripts in the
//!   submit folder, shards and merge through the bucket;
//! - dedup across shards: 3 shards remove exactly what 1 shard removes
//!   (exact and near copies planted across files), before any LLM call.

mod common;
#[path = "../../objstore/tests/moto.rs"]
mod moto;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EXPORTS: [&str; 5] = [
    "dataset.jsonl",
    "dataset.sharegpt.jsonl",
    "curated.jsonl",
    "curated.sharegpt.jsonl",
    "checks.jsonl",
];

/// Two JSONL files of 4 real news stories each (ids lee-0 … lee-7).
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let all = dolma_sample(dir, 8);
    let lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (a, b) = (dir.join("part-a.jsonl"), dir.join("part-b.jsonl"));
    std::fs::write(&a, lines[..4].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[4..].join("\n") + "\n").unwrap();
    (a, b)
}

/// The run's settings, as flags after the subcommand.
fn cmd(sub: &[&str], out: &Path, (a, b): &(PathBuf, PathBuf)) -> Command {
    let mut c = backforth_cmd(sub, out, a);
    reproducible(c.args(["--input", b.to_str().unwrap()]));
    c
}

/// The single-process reference run, made once per test binary.
fn reference() -> &'static (PathBuf, (PathBuf, PathBuf)) {
    static R: OnceLock<(PathBuf, (PathBuf, PathBuf))> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ins = inputs(&dir);
        let out = dir.join("single");
        assert!(cmd(&["run"], &out, &ins).status().unwrap().success());
        (out, ins)
    })
}

fn lines_in(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A backforth command on the run folder `out` (`… --out OUT`), its output.
fn on_run(out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap()
}

fn status_json(out: &Path) -> Vec<String> {
    let o = on_run(out, &["shard", "status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    v.into_iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every export byte-identical to the reference's; the merged summary's counts equal.
fn assert_same_as_reference(merged: &Path, reference: &Path) {
    assert!(merged.join("_SUCCESS").exists());
    for f in EXPORTS {
        let (a, b) = (
            std::fs::read(reference.join(f)).unwrap(),
            std::fs::read(merged.join(f)).unwrap(),
        );
        assert!(
            a == b,
            "{f} differs from the single-process run:\n{}\n---\n{}",
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
    }
    let js = |p: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(p.join("summary.json")).unwrap()).unwrap()
    };
    let (r, m) = (js(reference), js(merged));
    assert_eq!(m["input"]["documents"], r["input"]["documents"]);
    assert_eq!(m["input"]["files"], r["input"]["files"]);
    assert_eq!(m["keys"], r["keys"]);
    for s in ["backtranslate", "curate", "rewrite"] {
        for k in [
            "done",
            "parsed_ok",
            "parse_failed",
            "score_histogram",
            "kept",
        ] {
            assert_eq!(m["stages"][s][k], r["stages"][s][k], "{s}.{k}");
        }
    }
    for o in ["dataset", "curated"] {
        assert_eq!(
            m["outputs"][o]["examples"], r["outputs"][o]["examples"],
            "{o}"
        );
        assert_eq!(
            m["outputs"][o]["checks"]["reasons"], r["outputs"][o]["checks"]["reasons"],
            "{o}"
        );
    }
    // not vacuous: the reference has documents, instructions and curated pairs
    assert_eq!(r["input"]["documents"], 8);
    assert!(r["stages"]["curate"]["done"].as_u64().unwrap() > 0, "{r}");
    assert!(
        lines_in(&reference.join("curated.jsonl")) > 0,
        "the reference kept curated pairs"
    );
}

#[test]
fn local_shards_killed_and_relaunched_merge_to_the_single_process_run() {
    let _serial = model_lock();
    let (reference, ins) = reference();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sharded");
    let shard = |i: &str| {
        let mut c = cmd(&["run"], &out, ins);
        c.args(["--num-shards", "3", "--shard", i]);
        c
    };
    // shard 1, killed with SIGKILL once its first backtranslation is on disk
    let mut child = shard("1").spawn().unwrap();
    let stage = out.join("shards/00001/stages/backtranslate.jsonl");
    wait_for("shard 1's first record", Duration::from_secs(300), || {
        lines_in(&stage) >= 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("shards/00001/_DONE.json").exists(),
        "killed before it finished"
    );
    // shard 2, killed in a later stage: after its first curation
    let mut child = shard("2").spawn().unwrap();
    let curate = out.join("shards/00002/stages/curate.jsonl");
    wait_for("shard 2's first curation", Duration::from_secs(300), || {
        lines_in(&curate) >= 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status_json(&out), ["missing", "stopped", "stopped"]);
    let o = on_run(&out, &["shard", "merge"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("3 of 3 shards are not done") && e.contains("1 (stopped)"),
        "{e}"
    );

    for i in ["0", "2", "1"] {
        assert!(shard(i).status().unwrap().success(), "shard {i}");
    }
    assert_eq!(status_json(&out), ["done", "done", "done"]);
    // the resumed shards did not redo or duplicate the records they had
    for f in [&stage, &curate] {
        let ids: Vec<String> = read_jsonl(f)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "{ids:?}");
    }
    // a finished shard is skipped
    let o = shard("0").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("already done"));

    let o = on_run(&out, &["shard", "merge", "--with-stages"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_as_reference(&out, reference);
    assert_eq!(read_jsonl(&out.join("documents.jsonl")).len(), 8);
    // a shard file changed after its marker: the merge refuses it
    let f = out.join("shards/00002/checks.jsonl");
    let mut t = std::fs::read(&f).unwrap();
    t.extend_from_slice(b"{\"id\": \"x\"}\n");
    std::fs::write(&f, t).unwrap();
    let o = on_run(&out, &["merge"]); // the earlier command name, kept as a hidden alias
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("changed after its shard finished"));
}

// ------------------------------------------------------------------ Slurm

/// munged + slurmctld + slurmd on this machine, in a temp folder, stopped
/// by PID on drop.
struct Slurm {
    dir: PathBuf,
    conf: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
        || Path::new("/usr/sbin").join(bin).exists()
}

/// Whether slurm-wlm and munge are installed; outside CI a missing one
/// skips the test with a message, under CI it fails it.
fn slurm_installed() -> bool {
    if have("slurmctld") && have("munged") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs slurm-wlm and munge (scripts/setup.sh --test)"
    );
    eprintln!(
        "SKIPPED: slurm-wlm / munge are not installed (scripts/setup.sh --test installs them)"
    );
    false
}

impl Slurm {
    fn start(dir: &Path) -> Slurm {
        let dir = dir.to_path_buf();
        for d in ["state", "spool", "logs"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let key = dir.join("munge.key");
        let mut k = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut k)
            .unwrap();
        std::fs::write(&key, k).unwrap();
        Command::new("chmod")
            .args(["600", key.to_str().unwrap()])
            .status()
            .unwrap();
        let sock = dir.join("munge.sock");
        let st = Command::new("munged")
            .arg("--force")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--log-file={}", dir.join("munged.log").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display()))
            .status()
            .unwrap();
        assert!(st.success(), "munged did not start");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string();
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=backforth-test\nSlurmctldHost={host}\nSlurmUser=root\nAuthType=auth/munge\nAuthInfo=socket={d}/munge.sock\n\
                 CredType=cred/munge\nStateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
                 SlurmdPidFile={d}/slurmd.pid\nSlurmctldPort={}\nSlurmdPort={}\nSlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSchedulerType=sched/builtin\nSelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\nReturnToService=2\nMpiDefault=none\nJobCompType=jobcomp/none\n\
                 AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\nKillWait=5\nMaxArraySize=1001\n\
                 NodeName={host} CPUs=2 State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                free_port(),
                free_port()
            ),
        )
        .unwrap();
        let s = Slurm {
            dir: dir.clone(),
            conf,
        };
        for daemon in ["slurmctld", "slurmd"] {
            let st = Command::new(daemon)
                .arg("-f")
                .arg(&s.conf)
                .status()
                .unwrap();
            assert!(
                st.success(),
                "{daemon} did not start: {}",
                std::fs::read_to_string(dir.join(format!("{daemon}.log"))).unwrap_or_default()
            );
        }
        wait_for("the Slurm node to be idle", Duration::from_secs(60), || {
            s.run("sinfo", &["-h", "-o", "%T"]).trim() == "idle"
        });
        s
    }

    fn run(&self, bin: &str, args: &[&str]) -> String {
        let o = Command::new(bin)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for name in ["slurmd", "slurmctld", "munged"] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))) else {
                continue;
            };
            let pid = pid.trim().to_string();
            let _ = Command::new("kill").arg(&pid).status();
            // gone, or a zombie no one reaps in a container without init
            let alive = || {
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| {
                        !s.lines()
                            .any(|l| l.starts_with("State:") && l.contains('Z'))
                    })
                    .unwrap_or(false)
            };
            let t0 = Instant::now();
            while alive() && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive() {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
    }
}

#[test]
fn slurm_array_with_a_cancelled_task_relaunched_merges_to_the_single_process_run() {
    if !slurm_installed() {
        return;
    }
    let _serial = model_lock();
    let (reference, ins) = reference();
    let dir = tempfile::tempdir().unwrap();
    let slurm = Slurm::start(&dir.path().join("slurm"));
    let out = dir.path().join("sharded");
    let submit = |extra: &[&str]| -> Value {
        let o = cmd(&["shard", "slurm", "submit"], &out, ins)
            .args(["--num-shards", "4", "--throttle", "1"])
            .args(extra)
            .env("SLURM_CONF", &slurm.conf)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // with dedup across shards first: sign array → cluster → shard array → merge
    let first = submit(&["--dedup"]);
    assert_eq!(first["sign_jobs"].as_array().unwrap().len(), 1, "{first}");
    assert!(
        first["buckets_job"].is_string() && first["cluster_job"].is_string(),
        "{first}"
    );
    let job = first["array_jobs"][0].as_str().unwrap().to_string();
    let script = std::fs::read_to_string(out.join("slurm/shards-0.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3%1\n"), "{script}");
    // cancel task 1 while it runs, once its first record is on disk
    let stage = out.join("shards/00001/stages/backtranslate.jsonl");
    wait_for(
        "array task 1's first record",
        Duration::from_secs(400),
        || lines_in(&stage) >= 1,
    );
    slurm.run("scancel", &[&format!("{job}_1")]);
    // the other tasks run to the end; the merge job can never start (afterok)
    wait_for("the array to finish", Duration::from_secs(400), || {
        slurm.run("squeue", &["-h", "-j", &job]).trim().is_empty()
    });
    assert!(!out.join("_SUCCESS").exists());
    let merge_job = first["merge_job"].as_str().unwrap();
    slurm.run("scancel", &[merge_job]);
    assert_eq!(status_json(&out), ["done", "stopped", "done", "done"]);

    let again = submit(&["--missing"]);
    let script = std::fs::read_to_string(out.join("slurm/shards-0.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=1%1\n"),
        "only the missing rank: {script}"
    );
    assert_eq!(again["array_jobs"].as_array().unwrap().len(), 1);
    wait_for("the merge job's _SUCCESS", Duration::from_secs(400), || {
        out.join("_SUCCESS").exists()
    });
    assert_same_as_reference(&out, reference);
    let logs: Vec<_> = std::fs::read_dir(out.join("slurm/logs")).unwrap().collect();
    assert!(
        logs.len() >= 11,
        "a log per task, for the cluster and the merge: {}",
        logs.len()
    );
    assert!(out.join("dedup/remove/_DONE").exists());
}

/// The run folder in S3 (moto on loopback) under a real Slurm: the config,
/// scripts and logs go to `.backforth/slurm-<hash>/` in the submit folder,
/// the shards put their files and markers in the bucket, the merge job
/// merges from it. Answers come from the reference's response cache (the
/// point here is the plumbing, the generation is tested above).
#[test]
fn slurm_array_with_the_run_folder_in_s3_merges_to_the_single_process_run() {
    if !slurm_installed() {
        return;
    }
    let _serial = model_lock();
    let (reference, ins) = reference();
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = moto::Moto::with_bucket(dir.path(), "runs") else {
        return;
    };
    let slurm = Slurm::start(&dir.path().join("slurm"));
    let out = "s3://runs/sharded";
    let o = cmd(&["shard", "slurm", "submit"], Path::new(out), ins)
        .args(["--num-shards", "2"])
        .args([
            "-s",
            &format!("cache.path={}", reference.join("cache.sqlite").display()),
        ])
        .envs(s3.env())
        .env("BACKFORTH_WORK_DIR", dir.path().join("work"))
        .env("SLURM_CONF", &slurm.conf)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bucket = backforth_objstore::Location::parse("s3://runs/sharded").unwrap();
    wait_for(
        "the merge job's _SUCCESS in the bucket",
        Duration::from_secs(400),
        || bucket.join("_SUCCESS").head().unwrap().is_some(),
    );
    for f in EXPORTS {
        let got = bucket.join(f).get().unwrap().unwrap();
        assert!(
            got[..] == std::fs::read(reference.join(f)).unwrap()[..],
            "{f} differs"
        );
    }
    let scripts: Vec<PathBuf> = std::fs::read_dir(dir.path().join(".backforth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert!(scripts[0].join("config.toml").exists() && scripts[0].join("merge.sbatch").exists());
    assert!(std::fs::read_dir(scripts[0].join("logs")).unwrap().count() >= 3);
}

// ------------------------------------------------------ dedup across shards

/// 12 real stories in two files, plus, in the second file, an exact copy of
/// story 1 (other case and spacing) and a near copy of story 2 (one word
/// changed), and in the first file a near copy of story 9 placed before it.
fn corpus_with_duplicates(dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(lee_corpus()).unwrap();
    let stories: Vec<&str> = text
        .lines()
        .filter(|l| l.trim().len() > 400)
        .take(12)
        .collect();
    let line = |id: &str, t: &str| serde_json::json!({"id": id, "text": t}).to_string() + "\n";
    let near = |t: &str| {
        let mut w: Vec<&str> = t.split(' ').collect();
        let mid = w.len() / 2;
        w[mid] = "zanzibar";
        w.join(" ")
    };
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let mut sa = String::new();
    for (i, s) in stories[..6].iter().enumerate() {
        sa += &line(&format!("s{i}"), s);
    }
    sa += &line("s9-near-early", &near(stories[9]));
    let mut sb = String::new();
    for (i, s) in stories[6..].iter().enumerate() {
        sb += &line(&format!("s{}", i + 6), s);
    }
    sb += &line("s1-copy", &stories[1].to_uppercase().replace(' ', "  "));
    sb += &line("s2-near", &near(stories[2]));
    std::fs::write(&a, sa).unwrap();
    std::fs::write(&b, sb).unwrap();
    (a, b)
}

fn remove_set(out: &Path, shards: u32) -> Vec<Value> {
    let mut all = Vec::new();
    for i in 0..shards {
        all.extend(read_jsonl(&out.join(format!("dedup/remove/{i:05}.jsonl"))));
    }
    all.sort_by_key(|v| v["id"].as_str().unwrap().to_string());
    all
}

/// `shard dedup buckets|cluster` with the run's input and folder (these steps
/// take no stage or seed flags: they act on none).
fn dedup_step(step: &str, out: &Path, (a, b): &(PathBuf, PathBuf)) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.args(["shard", "dedup", step, "--quiet"])
        .args(["--input", a.to_str().unwrap(), "--input", b.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .env("BACKFORTH_LOG", "warn");
    c
}

#[test]
fn dedup_across_shards_removes_what_one_shard_removes_before_any_llm_call() {
    let dir = tempfile::tempdir().unwrap();
    let ins = corpus_with_duplicates(dir.path());
    let mut sets = Vec::new();
    for n in [1u32, 3] {
        let out = dir.path().join(format!("n{n}"));
        for i in 0..n {
            let o = cmd(&["shard", "dedup", "sign"], &out, &ins)
                .args(["--num-shards", &n.to_string(), "--shard", &i.to_string()])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        // a shard cannot run before the cluster step
        if n == 3 {
            let o = cmd(&["run"], &out, &ins)
                .args(["--num-shards", "3", "--shard", "0"])
                .output()
                .unwrap();
            assert!(!o.status.success());
            assert!(String::from_utf8_lossy(&o.stderr).contains("has not run"));
        }
        if n == 3 {
            // the bucket tasks as a scheduler would run them, one per band (with
            // one shard, cluster runs them itself)
            for band in 0..14 {
                let o = dedup_step("buckets", &out, &ins)
                    .args(["--num-shards", "3", "--band", &band.to_string()])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            assert!(out.join("dedup/pairs/band13.done").exists());
        }
        let o = dedup_step("cluster", &out, &ins)
            .args(["--num-shards", &n.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        sets.push((out, remove_set(&dir.path().join(format!("n{n}")), n)));
    }
    let kinds: Vec<(String, String, String)> = sets[0]
        .1
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().into(),
                v["kind"].as_str().unwrap().into(),
                v["duplicate_of"].as_str().unwrap().into(),
            )
        })
        .collect();
    // the first occurrence in input order is kept, whichever file or shard the copy is in
    assert_eq!(
        kinds,
        [
            ("s1-copy".to_string(), "exact".to_string(), "s1".to_string()),
            ("s2-near".into(), "near".into(), "s2".into()),
            ("s9".into(), "near".into(), "s9-near-early".into()),
        ]
    );
    assert_eq!(
        sets[0].1, sets[1].1,
        "3 shards remove exactly what 1 shard removes"
    );

    // the shards drop their remove lists before the first stage
    let _serial = model_lock();
    let out = &sets[1].0;
    for i in ["0", "1", "2"] {
        let o = cmd(&["run"], out, &ins)
            .args([
                "--num-shards",
                "3",
                "--shard",
                i,
                "--stages",
                "backtranslate",
                "-s",
                "backtranslate.max_tokens=4",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = on_run(out, &["shard", "merge", "--with-stages"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: Vec<String> = read_jsonl(&out.join("stages/backtranslate.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 12, "{ids:?}");
    for gone in ["s1-copy", "s2-near", "s9"] {
        assert!(!ids.iter().any(|i| i == gone), "{gone} reached the model");
    }
    let s: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["input"]["documents"], 12);
    assert_eq!(
        s["input"]["skipped"]["exact_duplicate_across_shards"], 1,
        "{}",
        s["input"]
    );
    assert_eq!(
        s["input"]["skipped"]["near_duplicate_across_shards"], 2,
        "{}",
        s["input"]
    );
}
