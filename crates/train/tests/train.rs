//! The trainer against the real test model (SmolLM2-135M GGUF) and the real
//! llama.cpp engine: our plain-ops model computes llama.cpp's logits; every
//! LoRA factor gets a gradient; the adapter GGUF loads in llama.cpp and gives
//! the logits of our adapted model; a few dozen updates on seed pairs lower
//! the held-out loss; the PEFT export reads back as the same adapter.

use backforth_inference::ChatMessage;
use backforth_llama::{LlamaEngine, LlamaOptions};
use backforth_train::data::{self, ChatTokenizer};
use backforth_train::gguf::{self, AdapterTensor};
use backforth_train::model::{LoraConfig, Model, Pass};
use backforth_train::optim::{grads_of, AdamW, AdamWConfig};
use backforth_train::trainer::{self, TrainConfig};
use candle_core::{Device, Tensor};
use std::path::PathBuf;

fn cache() -> PathBuf {
    PathBuf::from(
        std::env::var("BACKFORTH_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/backforth", std::env::var("HOME").unwrap())),
    )
}

fn model_path() -> PathBuf {
    let p = cache().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-assets.sh test-model",
        p.display()
    );
    p
}

fn seeds() -> Vec<backforth::seeds::Seed> {
    let p = cache().join("seeds/python-faq.jsonl");
    let mut stats = Default::default();
    backforth::seeds::read_seeds(&p, 1 << 20, &mut stats)
        .expect("seeds: run scripts/fetch-assets.sh seeds")
}

fn engine() -> LlamaEngine {
    LlamaEngine::load(
        &model_path(),
        LlamaOptions {
            threads: 2,
            batch_size: 1,
            context: 512,
            n_batch: 512,
            prefix_reuse: false,
        },
    )
    .unwrap()
}

/// Our logits for one sequence, `(len, vocab)`.
fn our_logits(m: &Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let t = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
    let h = m.hidden(&t, Pass::eval()).unwrap();
    m.logits(&h).unwrap().to_vec2().unwrap()
}

/// Mean KL(ours ‖ llama.cpp) over positions (nats), and the share of
/// positions whose most likely token agrees. KL, not raw logit differences:
/// a shift of all logits at a position changes nothing.
fn compare(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let logp = |v: &[f32]| {
        let m = v.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z = v.iter().map(|x| (*x as f64 - m).exp()).sum::<f64>().ln() + m;
        v.iter().map(|x| *x as f64 - z).collect::<Vec<f64>>()
    };
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap()
            .0
    };
    let (mut kl, mut agree) = (0.0, 0);
    for (x, y) in a.iter().zip(b) {
        let (p, q) = (logp(x), logp(y));
        kl += p
            .iter()
            .zip(&q)
            .map(|(lp, lq)| lp.exp() * (lp - lq))
            .sum::<f64>();
        agree += (argmax(x) == argmax(y)) as usize;
    }
    (kl / a.len() as f64, agree as f64 / a.len() as f64)
}

fn sample_ids(e: &LlamaEngine) -> Vec<u32> {
    let ex = data::Example {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "What does the Python keyword `yield` do in a function?".into(),
        }],
        completion: "It turns the function into a generator that produces values lazily.".into(),
        source: "test".into(),
    };
    e.encode(&ex).unwrap().ids
}

/// Tolerance for ours (f32 on the dequantized weights) against llama.cpp
/// (Q4_1 weights times activations quantized to 8 bits, f16 KV cache):
/// measured mean KL ≈ 0.01 nats; a wrong rotary layout or norm gives > 1.
const KL_TOL: f64 = 0.05;

#[test]
fn logits_match_llama_cpp_on_the_same_gguf() {
    let e = engine();
    let ids = sample_ids(&e);
    let toks: Vec<_> = ids
        .iter()
        .map(|&i| llama_cpp_2::token::LlamaToken(i as i32))
        .collect();
    let theirs = e.logits(&toks).unwrap();
    let m = Model::new(
        gguf::load_base(&model_path(), &Device::Cpu).unwrap(),
        None,
        0,
        &Device::Cpu,
    )
    .unwrap();
    let ours = our_logits(&m, &ids);
    let (kl, agree) = compare(&ours, &theirs);
    eprintln!(
        "{} positions: mean KL {kl:.5} nats, argmax agreement {agree:.3}",
        ids.len()
    );
    assert!(kl < KL_TOL, "mean KL {kl}");
    assert!(agree >= 0.9, "argmax agreement {agree}");
}

#[test]
fn every_lora_factor_gets_a_gradient() {
    let e = engine();
    let ids = sample_ids(&e);
    let lora = LoraConfig {
        dropout: 0.1,
        ..Default::default()
    };
    let m = Model::new(
        gguf::load_base(&model_path(), &Device::Cpu).unwrap(),
        Some(lora),
        1,
        &Device::Cpu,
    )
    .unwrap();
    let vars = m.vars();
    assert_eq!(
        vars.len(),
        30 * 7 * 2,
        "A and B for 7 projections in 30 blocks"
    );
    let t = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
    let positions: Vec<u32> = (0..ids.len() as u32 - 1).collect();
    let targets: Vec<u32> = ids[1..].to_vec();
    let nonzero = |g: &Option<Tensor>| {
        g.as_ref()
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
            .unwrap_or(false)
    };
    let mut opt = AdamW::new(
        vars.clone(),
        AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let grads = |seed: u64| {
        let pass = Pass { dropout: 0.1, seed };
        let g = m
            .loss(&t, &positions, &targets, pass)
            .unwrap()
            .backward()
            .unwrap();
        grads_of(&g, &vars)
    };
    // B starts at zero, so only the B factors have a gradient at first …
    let g0 = grads(7);
    for (i, v) in g0.iter().enumerate() {
        assert_eq!(
            nonzero(v),
            i % 2 == 1,
            "var {i}: a zero B leaves A without gradient, B has one"
        );
    }
    opt.step(&g0, 1e-3).unwrap();
    // … and after one update every factor has one.
    let g1 = grads(8);
    let missing: Vec<usize> = (0..vars.len()).filter(|&i| !nonzero(&g1[i])).collect();
    assert!(missing.is_empty(), "vars without gradient: {missing:?}");
}

#[test]
fn training_lowers_the_held_out_loss_and_the_adapter_runs_in_llama_cpp() {
    let e = engine();
    let examples = data::backward(&seeds(), None).unwrap();
    let enc: Vec<_> = examples.iter().map(|x| e.encode(x).unwrap()).collect();
    // the backward prompt is what the backtranslate stage sends
    assert_eq!(examples[0].messages.len(), 1);
    assert_eq!(
        examples[0].messages[0].content.trim(),
        seeds()[0].response.trim()
    );
    let out = tempfile_dir("train");
    let cfg = TrainConfig {
        max_steps: 16,
        batch_size: 4,
        max_seq: 128,
        eval_fraction: 0.1,
        checkpoint_every: 5,
        optim: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = trainer::train(&model_path(), &enc, &cfg, &out, &mut backforth_inference::progress::Silent).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    let (start, end) = (s.eval_loss_start.unwrap(), s.eval_loss_end.unwrap());
    assert!(end < start - 0.1, "held-out loss {start:.3} → {end:.3}");
    assert!(
        s.skipped.get("too_long").copied().unwrap_or(0) > 0,
        "long seeds are counted, not cut"
    );
    assert!(out.join("checkpoints/step-000015/state.json").exists());
    assert!(out.join("checkpoints/step-000016/state.json").exists());
    assert!(
        !out.join("checkpoints/step-000010/state.json").exists(),
        "only the newest two are kept"
    );
    let progress = std::fs::read_to_string(out.join("progress.jsonl")).unwrap();
    assert_eq!(
        progress.lines().filter(|l| l.contains("\"loss\"")).count(),
        16
    );

    // the adapter loads in llama.cpp and gives our adapted model's logits
    let adapter = gguf::read_adapter(&out.join("adapter.gguf"), &Device::Cpu).unwrap();
    assert_eq!(adapter.tensors.len(), 30 * 7);
    let m = Model::new(
        gguf::load_base(&model_path(), &Device::Cpu).unwrap(),
        Some(cfg.lora.clone()),
        0,
        &Device::Cpu,
    )
    .unwrap();
    m.set_adapter(&adapter.tensors).unwrap();
    let ids = enc[0].ids[..enc[0].ids.len().min(96)].to_vec();
    let toks: Vec<_> = ids
        .iter()
        .map(|&i| llama_cpp_2::token::LlamaToken(i as i32))
        .collect();
    let mut tuned = engine();
    tuned.set_adapter(&out.join("adapter.gguf"), 1.0).unwrap();
    let theirs = tuned.logits(&toks).unwrap();
    let ours = our_logits(&m, &ids);
    let (kl, agree) = compare(&ours, &theirs);
    eprintln!("adapter: mean KL {kl:.5} nats, argmax agreement {agree:.3}");
    assert!(kl < KL_TOL && agree >= 0.9, "{kl} {agree}");
    let base = e.logits(&toks).unwrap();
    let (moved, _) = compare(&theirs, &base);
    eprintln!("adapter vs base in llama.cpp: mean KL {moved:.4}");
    assert!(
        moved > 10.0 * kl && moved > KL_TOL,
        "the adapter moves llama.cpp's output far more than the parity error (KL {moved} vs {kl})"
    );

    // PEFT export reads back as the same adapter
    let (peft, alpha) = backforth_train::peft::read_peft(&out.join("peft"), &m.hp).unwrap();
    assert_eq!(alpha, cfg.lora.alpha);
    assert_same(&peft, &adapter.tensors);
    let _ = std::fs::remove_dir_all(&out);
}

fn assert_same(a: &[AdapterTensor], b: &[AdapterTensor]) {
    assert_eq!(a.len(), b.len());
    let mut b: Vec<&AdapterTensor> = b.iter().collect();
    b.sort_by(|x, y| x.base.cmp(&y.base));
    let mut a: Vec<&AdapterTensor> = a.iter().collect();
    a.sort_by(|x, y| x.base.cmp(&y.base));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.base, y.base);
        for (p, q) in [(&x.a, &y.a), (&x.b, &y.b)] {
            let d = max_abs(&(p - q).unwrap());
            assert_eq!(d, 0.0, "{}", x.base);
        }
    }
}

/// Largest absolute entry of a tensor.
fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("backforth-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Hugging Face names of the GGUF weights, written out independently of the
/// crate's own mapping.
fn hf_name(g: &str) -> String {
    match g {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let parts: Vec<&str> = g.split('.').collect();
    let module = match parts[2] {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        other => panic!("unexpected GGUF tensor {other}"),
    };
    format!("model.layers.{}.{module}.{}", parts[1], parts[3])
}

/// A transformers-style folder made from the GGUF's weights (llama q/k rows
/// in Hugging Face order, bf16 like a real checkpoint) loads back onto the
/// GGUF as the same weights; a wrong shape or a missing weight is refused.
/// With BACKFORTH_HF_BASE set to a folder transformers wrote from the same
/// GGUF (scripts/gguf_to_hf.py), its weights must match the GGUF's too.
#[test]
fn hugging_face_base_weights_replace_the_gguf_ones() {
    let gguf_w = gguf::load_base(&model_path(), &Device::Cpu).unwrap();
    let hp = gguf_w.hp.clone();
    let mut hf = std::collections::HashMap::new();
    for (g, t) in &gguf_w.tensors {
        let mut t = t.clone();
        let heads = match g.split('.').nth(2) {
            Some("attn_q") => Some(hp.n_head),
            Some("attn_k") => Some(hp.n_head_kv),
            _ => None,
        };
        if let Some(h) = heads.filter(|_| g.ends_with(".weight")) {
            // llama.cpp keeps each head's rotary pairs interleaved; transformers keeps halves
            let (rows, cols) = t.dims2().unwrap();
            t = t.reshape((h, rows / h / 2, 2, cols)).unwrap();
            t = t.transpose(1, 2).unwrap().contiguous().unwrap();
            t = t.reshape((rows, cols)).unwrap();
        }
        let t = t.to_dtype(candle_core::DType::BF16).unwrap();
        hf.insert(hf_name(g), t);
    }
    let dir = tempfile_dir("hf-base");
    std::fs::create_dir_all(&dir).unwrap();
    candle_core::safetensors::save(&hf, dir.join("model.safetensors")).unwrap();
    let max_diff = |a: &gguf::BaseWeights| -> f32 {
        let mut worst = 0f32;
        for (g, t) in &gguf_w.tensors {
            let d = max_abs(&(t - a.tensors[g].clone()).unwrap());
            let scale = max_abs(t);
            worst = worst.max(d / scale.max(1e-6));
        }
        worst
    };
    let mut back = gguf::load_base(&model_path(), &Device::Cpu).unwrap();
    let n = backforth_train::peft::overlay_hf_weights(&mut back, &dir).unwrap();
    assert_eq!(n, gguf_w.tensors.len());
    // bf16 keeps 8 bits of mantissa: relative error ≤ 2^-8 of the largest entry
    let d = max_diff(&back);
    assert!(d > 0.0 && d < 1.0 / 256.0, "relative difference {d}");
    // a wrong shape and a missing weight are refused
    let q = "model.layers.0.self_attn.q_proj.weight".to_string();
    let good = hf[&q].clone();
    hf.insert(q.clone(), good.narrow(0, 0, 8).unwrap());
    candle_core::safetensors::save(&hf, dir.join("model.safetensors")).unwrap();
    let e = backforth_train::peft::overlay_hf_weights(&mut back, &dir).unwrap_err();
    assert!(format!("{e:#}").contains("shape"), "{e:#}");
    hf.remove(&q);
    candle_core::safetensors::save(&hf, dir.join("model.safetensors")).unwrap();
    let e = backforth_train::peft::overlay_hf_weights(&mut back, &dir).unwrap_err();
    assert!(format!("{e:#}").contains("blk.0.attn_q.weight"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
    if let Ok(real) = std::env::var("BACKFORTH_HF_BASE") {
        let mut w = gguf::load_base(&model_path(), &Device::Cpu).unwrap();
        let n =
            backforth_train::peft::overlay_hf_weights(&mut w, std::path::Path::new(&real)).unwrap();
        let d = max_diff(&w);
        eprintln!("{real}: {n} tensors, largest relative difference to the GGUF {d:.2e}");
        assert!(d < 1e-3, "{d}");
    }
}
