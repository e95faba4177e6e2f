//! `backforth train` as a user runs it, on the real test model and seed
//! pairs: SIGKILLed mid-run, the same command resumes from the last
//! checkpoint without redoing or losing an update; other settings into the
//! same folder are refused; the adapter then serves as the fine-tuned
//! backward model of the backtranslate stage, its hash in the model id;
//! the PEFT export converts back to a GGUF that llama.cpp loads.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn train(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.args(["train", "--quiet", "--data", "backward", "--threads", "2"])
        .args(["--model", test_model().to_str().unwrap()])
        .args(["--seeds", seeds().to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args([
            "-s",
            "max_steps=10",
            "-s",
            "checkpoint_every=3",
            "-s",
            "max_seq=96",
        ])
        .args([
            "-s",
            "batch_size=2",
            "-s",
            "lora.rank=4",
            "-s",
            "optim.lr=1e-3",
        ])
        .args(extra)
        .env("BACKFORTH_LOG", "warn");
    c
}

fn losses(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("progress.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn sigkill_mid_training_resumes_from_the_checkpoint_and_the_adapter_backtranslates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("myx");
    let mut child = train(&out, &[]).spawn().unwrap();
    let t0 = Instant::now();
    // kill once the step-6 checkpoint is complete, before the end
    while !out.join("checkpoints/step-000006/state.json").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before the kill"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no checkpoint after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = losses(&out);
    assert!(
        before.len() >= 6 && before.len() < 10,
        "killed after {} updates",
        before.len()
    );
    assert!(!out.join("adapter.gguf").exists());

    let o = train(&out, &[]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("resumed from step 6"), "{stdout}");
    // every update once, in order, none redone or lost
    assert_eq!(losses(&out), (1..=10).collect::<Vec<u64>>());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["resumed_from"], 6);
    assert_eq!(summary["steps"], 10);

    // the same folder with other settings is refused
    let o = train(&out, &["-s", "lora.rank=8"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));

    // the adapter as the fine-tuned backward model of the backtranslate stage
    let adapter = out.join("adapter.gguf");
    let run = dir.path().join("run");
    let input = dolma_sample(dir.path(), 2);
    let o = backforth_cmd(&["backtranslate"], &run, &input)
        .args(["-s", "backtranslate.mode=\"finetuned\""])
        .args(["-s", &format!("model.lora=[\"{}\"]", adapter.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bt = std::fs::read_to_string(run.join("stages/backtranslate.jsonl")).unwrap();
    assert_eq!(bt.lines().count(), 2);
    for l in bt.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let model = v["backtranslation"]["model"].as_str().unwrap();
        assert!(model.contains("+lora:adapter.gguf#"), "{model}");
    }

    // PEFT back to GGUF: same tensors, loads in llama.cpp
    let imported = dir.path().join("imported.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args([
            "adapter",
            "import",
            "--peft",
            out.join("peft").to_str().unwrap(),
        ])
        .args([
            "--model",
            test_model().to_str().unwrap(),
            "--out",
            imported.to_str().unwrap(),
        ])
        .env("BACKFORTH_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("loads in llama.cpp"));

    // `serve --lora`: the served model is the adapted one
    let text = "The two principal tools for caching methods are functools.cached_property() and functools.lru_cache().";
    let plain = served_answer(None, text);
    let tuned = served_answer(Some(&adapter), text);
    assert_ne!(plain, tuned, "the adapter changes what the server answers");
}

/// Greedy answer (24 tokens) of `backforth serve` on the test model, with
/// an adapter when given, to one user message.
fn served_answer(lora: Option<&Path>, user: &str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.args(["serve", "--model", test_model().to_str().unwrap()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--served-name",
            "m",
        ])
        .env("BACKFORTH_LOG", "warn")
        .stderr(std::process::Stdio::piped());
    if let Some(a) = lora {
        c.args(["--lora", a.to_str().unwrap()]);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = l.strip_prefix("serving m on ") {
            break rest.trim().to_string();
        }
    };
    let hostport = url.trim_start_matches("http://").trim_end_matches("/v1");
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": user}],
        "temperature": 0.0, "max_tokens": 24})
    .to_string();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn selfalign_one_small_iteration_end_to_end_and_a_rerun_retrains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // the stories' first 45 words, so that curated pairs fit max_seq and M_1 trains on them
    let input = dolma_sample(dir.path(), 3);
    let short: String = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .take(45)
                .collect::<Vec<_>>()
                .join(" ");
            v["text"] = t.into();
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&input, short).unwrap();
    let root = dir.path().join("sa");
    let selfalign = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
        c.args([
            "selfalign",
            "--quiet",
            "--threads",
            "2",
            "--iterations",
            "1",
            "--keep",
            "1",
        ])
        .args(["--model", test_model().to_str().unwrap()])
        .args(["--seeds", seeds().to_str().unwrap()])
        .args(["--input", input.to_str().unwrap()])
        .args(["--out", root.to_str().unwrap()])
        .args(["--train-set", "max_steps=12", "--train-set", "max_seq=128"])
        .args([
            "--train-set",
            "batch_size=4",
            "--train-set",
            "optim.lr=2e-3",
        ])
        .args([
            "-s",
            "backtranslate.max_tokens=64",
            "-s",
            "curate.max_tokens=96",
        ])
        .args(["-s", "model.context=2048"])
        .env("BACKFORTH_LOG", "warn");
        c.output().unwrap()
    };
    let o = selfalign();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    for m in ["myx", "m0", "m1"] {
        assert!(root.join(m).join("adapter.gguf").exists(), "{m}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("selfalign_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 2);
    // M_yx wrote instructions the curation model scored
    assert!(summary[0]["scored"].as_u64().unwrap() >= 1, "{summary}");
    // M_1 trained on the seed pairs plus the curated ones
    let m = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(d).join("train_summary.json")).unwrap())
            .unwrap()
    };
    // (examples over max_seq are counted as skipped, so the three counts add up)
    let n = |v: &serde_json::Value| {
        v["train_examples"].as_u64().unwrap()
            + v["eval_examples"].as_u64().unwrap()
            + v["skipped"]
                .as_object()
                .unwrap()
                .values()
                .map(|x| x.as_u64().unwrap())
                .sum::<u64>()
    };
    assert_eq!(
        n(&m("m1")),
        n(&m("m0")) + summary[0]["kept"].as_u64().unwrap(),
        "{}",
        m("m1")
    );
    // iteration 1 curated iteration 0's backtranslations with M_1
    let curate = |i: usize| {
        std::fs::read_to_string(root.join(format!("iter-{i}/stages/curate.jsonl"))).unwrap()
    };
    let model_of = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["curation"]["model"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (m0, m1) = (model_of(&curate(0)), model_of(&curate(1)));
    assert_eq!(m0.len(), m1.len());
    assert!(
        m0[0].contains("+lora:") && m1[0].contains("+lora:") && m0[0] != m1[0],
        "{m0:?} {m1:?}"
    );

    // rerun: every model is up to date and no stage regenerates
    let o = selfalign();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("is up to date").count(), 3, "{err}");
    assert!(!err.contains("training on"), "{err}");
    assert_eq!(curate(1).lines().count(), m1.len());
}

/// `--engine trl --launch`: TRL itself is too heavy for CI (torch with CUDA
/// libraries; `scripts/bench-train.sh` runs the real one), so a stand-in
/// program injects the failure: the first launch dies after leaving a
/// checkpoint, and the rerun must hand TRL that checkpoint; the second
/// launch leaves a PEFT adapter (one our trainer wrote), which must come
/// back as a GGUF that llama.cpp loads.
#[test]
fn trl_engine_writes_the_job_resumes_a_failed_launch_and_imports_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    // a PEFT folder to hand back: one update of our own trainer
    let peft_src = dir.path().join("src");
    let o = train(&peft_src, &["-s", "max_steps=1"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fake = dir.path().join("trl");
    std::fs::write(
        &fake,
        format!(
            "#!/usr/bin/env bash\nset -e\necho \"$@\" >> {log}\ncfg=$3\nout=$(python3 -c 'import json,sys; t=open(sys.argv[1]).read(); print(json.loads(\"\".join(l for l in t.splitlines() if not l.startswith(\"#\")))[\"output_dir\"])' \"$cfg\")\nif [ ! -d \"$out/checkpoint-3\" ]; then mkdir -p \"$out/checkpoint-3\"; exit 3; fi\ncp {src}/* \"$out/\"\n",
            log = dir.path().join("calls.log").display(),
            src = peft_src.join("peft").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("job");
    let run = |launch: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
        c.args(["train", "--engine", "trl", "--data", "backward"])
            .args(["--model", test_model().to_str().unwrap()])
            .args(["--seeds", seeds().to_str().unwrap()])
            .args(["--hf-model", "HuggingFaceTB/SmolLM2-135M-Instruct"])
            .args(["--out", out.to_str().unwrap(), "-s", "max_steps=5"])
            .args([
                "--trl-bin",
                fake.to_str().unwrap(),
                "--trl-arg=--bf16",
                "--trl-arg=false",
            ])
            .env("BACKFORTH_LOG", "warn");
        if launch {
            c.arg("--launch");
        }
        c.output().unwrap()
    };
    // without --launch: the job and the command, nothing run
    let o = run(false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("sft --config") && stdout.contains("--bf16 false"),
        "{stdout}"
    );
    assert!(out.join("trl/data/train.jsonl").exists());
    assert!(!dir.path().join("calls.log").exists());
    // first launch fails: the error says so, no adapter
    let o = run(true);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("rerun to resume"));
    assert!(!out.join("adapter.gguf").exists());
    // the rerun resumes from TRL's checkpoint and imports the adapter
    let o = run(true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2);
    assert!(!calls[0].contains("--resume_from_checkpoint"));
    assert!(calls[1].contains("--resume_from_checkpoint") && calls[1].contains("checkpoint-3"));
    assert!(calls[1].ends_with("--bf16 false"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("loads in llama.cpp"), "{stdout}");
    assert!(out.join("adapter.gguf").exists());
}
