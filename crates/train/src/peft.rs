//! LoRA adapters in PEFT's layout (`adapter_model.safetensors` +
//! `adapter_config.json`, as Hugging Face PEFT saves and loads them), and
//! PEFT adapters trained elsewhere (TRL/PEFT on GPUs) converted to GGUF for
//! llama.cpp.
//!
//! Names: `base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight`
//! and `…mlp.{gate,up,down}_proj…`; `lora_A` is `(rank, in)`, `lora_B` is
//! `(out, rank)`. llama.cpp's converter stores the llama architecture's query
//! and key rows permuted (rotary pairs interleaved within each head), so the
//! `B` factors of `q_proj`/`k_proj` are permuted on the way out and back
//! (the `A` factors act on inputs and are unchanged).

use crate::gguf::{AdapterTensor, Arch, BaseWeights, HParams};
use crate::model::{LoraConfig, Model, TARGETS};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn hf_module(stem: &str) -> Option<(&'static str, &'static str)> {
    let hf = TARGETS.iter().find(|(g, _)| *g == stem)?.1;
    let group = if stem.starts_with("attn") {
        "self_attn"
    } else {
        "mlp"
    };
    Some((group, hf))
}

/// Rows of a llama q/k matrix from llama.cpp's order to Hugging Face's
/// (`to_hf`) or back. `x` is `(heads·head_dim, cols)`.
fn permute_rows(x: &Tensor, heads: usize, to_hf: bool) -> Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    let hd = rows / heads;
    Ok(if to_hf {
        // llama.cpp: [head][pair i][s] → HF: [head][s][i]
        x.reshape((heads, hd / 2, 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?
    } else {
        x.reshape((heads, 2, hd / 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?
    })
}

fn heads_for(stem: &str, hp: &HParams) -> Option<usize> {
    match (hp.arch, stem) {
        (Arch::Llama, "attn_q") => Some(hp.n_head),
        (Arch::Llama, "attn_k") => Some(hp.n_head_kv),
        _ => None,
    }
}

/// The GGUF name of a Hugging Face transformers weight of a llama or qwen2
/// model (`model.layers.3.self_attn.q_proj.weight` → `blk.3.attn_q.weight`);
/// `None` for names outside that scheme.
pub fn gguf_name_of_hf(name: &str) -> Option<String> {
    match name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let stem = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => {
            let (_, hf) = module.split_once('.')?;
            TARGETS.iter().find(|(_, h)| *h == hf)?.0
        }
    };
    Some(format!("blk.{layer}.{stem}.{kind}"))
}

/// Replace a GGUF's dequantized base weights with those of a Hugging Face
/// model folder (every `*.safetensors` in it, as transformers saves them; any
/// float dtype, converted to f32): e.g. the unquantized weights the GGUF was
/// made from, so training sees full precision while inference keeps the
/// quantized GGUF. The GGUF still gives the shapes, tokenizer and chat
/// template. llama q/k rows are converted to llama.cpp's order.
/// Returns the number of tensors replaced.
/// Errors: no safetensors file; a weight the GGUF lacks or of another shape;
/// a GGUF weight the folder does not give (a tied `output.weight` is fine).
pub fn overlay_hf_weights(base: &mut BaseWeights, dir: &Path) -> Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no .safetensors files", dir.display());
    }
    let mut replaced = std::collections::HashSet::new();
    for f in &files {
        let loaded = candle_core::safetensors::load(f, &Device::Cpu)
            .with_context(|| format!("reading {}", f.display()))?;
        for (name, t) in loaded {
            let Some(g) = gguf_name_of_hf(&name) else {
                continue; // rotary caches and other buffers
            };
            let Some(old) = base.tensors.get(&g) else {
                if g == "output.weight" {
                    continue; // the GGUF ties the output head to the embeddings
                }
                bail!(
                    "{}: {name} ({g}) is not in the GGUF base model",
                    f.display()
                );
            };
            let mut t = t.to_dtype(candle_core::DType::F32)?;
            if old.dims() != t.dims() {
                bail!(
                    "{}: {name} has shape {:?}, the GGUF's {g} has {:?}",
                    f.display(),
                    t.dims(),
                    old.dims()
                );
            }
            let stem = g.split('.').nth(2).unwrap_or("");
            if g.ends_with(".weight") {
                if let Some(h) = heads_for(stem, &base.hp) {
                    t = permute_rows(&t, h, false)?;
                }
            }
            let t = t.to_device(old.device())?;
            base.tensors.insert(g.clone(), t);
            replaced.insert(g);
        }
    }
    let mut missing: Vec<&String> = base
        .tensors
        .keys()
        .filter(|k| !replaced.contains(*k) && gguf_name_is_weight(k))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        bail!(
            "{}: gives no weight for {} GGUF tensors (first: {})",
            dir.display(),
            missing.len(),
            missing[0]
        );
    }
    Ok(replaced.len())
}

fn gguf_name_is_weight(k: &str) -> bool {
    k == "token_embd.weight"
        || k == "output_norm.weight"
        || k == "output.weight"
        || k.starts_with("blk.")
}

/// Write the model's adapter in PEFT's layout under `dir`. Errors: I/O.
pub fn write_peft(dir: &Path, model: &Model, lora: &LoraConfig, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut modules = Vec::new();
    for a in model.adapter_tensors() {
        // blk.{i}.{stem}.weight
        let parts: Vec<&str> = a.base.split('.').collect();
        let (Some(i), Some(stem)) = (parts.get(1), parts.get(2)) else {
            continue;
        };
        let Some((group, hf)) = hf_module(stem) else {
            continue;
        };
        let b = match heads_for(stem, &model.hp) {
            Some(h) => permute_rows(&a.b, h, true)?,
            None => a.b.clone(),
        };
        let key = format!("base_model.model.model.layers.{i}.{group}.{hf}");
        t.insert(format!("{key}.lora_A.weight"), a.a.contiguous()?);
        t.insert(format!("{key}.lora_B.weight"), b);
        if !modules.contains(&hf) {
            modules.push(hf);
        }
    }
    candle_core::safetensors::save(&t, dir.join("adapter_model.safetensors"))?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "base_model_name_or_path": base_model,
    });
    std::fs::write(
        dir.join("adapter_config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    Ok(())
}

/// Read a PEFT LoRA adapter folder as GGUF-named tensor pairs for a base
/// model with shapes `hp`, and its alpha. `rank_pattern`/`alpha_pattern`
/// (per-module ranks) and DoRA are refused, as llama.cpp has one alpha per
/// adapter. Errors: missing files; a module the trainer does not know; a
/// `lora_A` without its `lora_B`.
pub fn read_peft(dir: &Path, hp: &HParams) -> Result<(Vec<AdapterTensor>, f32)> {
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("adapter_config.json"))
            .with_context(|| format!("{}/adapter_config.json", dir.display()))?,
    )?;
    for k in ["rank_pattern", "alpha_pattern"] {
        if cfg
            .get(k)
            .and_then(|v| v.as_object())
            .is_some_and(|o| !o.is_empty())
        {
            bail!(
                "{}: {k} is set; llama.cpp adapters have one rank and alpha",
                dir.display()
            );
        }
    }
    if cfg.get("use_dora").and_then(|v| v.as_bool()) == Some(true) {
        bail!(
            "{}: DoRA adapters cannot be converted to llama.cpp LoRA",
            dir.display()
        );
    }
    let alpha = cfg
        .get("lora_alpha")
        .and_then(|v| v.as_f64())
        .context("adapter_config.json lacks lora_alpha")? as f32;
    let tensors =
        candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)
            .with_context(|| format!("{}/adapter_model.safetensors", dir.display()))?;
    let mut out = Vec::new();
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    for k in keys {
        let Some(prefix) = k.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let b = tensors
            .get(&format!("{prefix}.lora_B.weight"))
            .with_context(|| format!("{k} has no lora_B"))?;
        // …layers.{i}.{group}.{module}
        let parts: Vec<&str> = prefix.rsplitn(4, '.').collect();
        let (module, layer) = (parts[0], parts.get(2).copied().unwrap_or_default());
        let Some((stem, _)) = TARGETS.iter().find(|(_, h)| *h == module) else {
            bail!("{k}: module {module} is not one llama.cpp adapters cover here");
        };
        let layer: usize = layer
            .parse()
            .with_context(|| format!("{k}: no layer number"))?;
        let b = match heads_for(stem, hp) {
            Some(h) => permute_rows(b, h, false)?,
            None => b.clone(),
        };
        out.push(AdapterTensor {
            base: format!("blk.{layer}.{stem}.weight"),
            a: tensors[k].clone(),
            b,
        });
    }
    if out.is_empty() {
        bail!("{}: no LoRA tensors found", dir.display());
    }
    Ok((out, alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qk_permutation_round_trips_and_matches_the_converter() {
        // 2 heads of size 4: llama.cpp row order within a head is (0, 2, 1, 3)
        // of Hugging Face's (pairs i and i + d/2 interleaved).
        let hf = Tensor::arange(0f32, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((8, 1))
            .unwrap();
        let gg = permute_rows(&hf, 2, false).unwrap();
        let v: Vec<f32> = gg.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        let back: Vec<f32> = permute_rows(&gg, 2, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(back, (0..8).map(|x| x as f32).collect::<Vec<_>>());
    }
}
