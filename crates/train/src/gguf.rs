//! Base weights from a GGUF file (dequantized to f32 for training) and LoRA
//! adapters written as GGUF for llama.cpp.
//!
//! Tensor and key names follow the GGUF spec and llama.cpp's loader
//! (`token_embd.weight`, `blk.N.attn_q.weight`, …; `<arch>.block_count`, …).
//! Weights are held in llama.cpp's own layout: for the llama architecture the
//! query and key rows are in the order llama.cpp's converter wrote them
//! (interleaved rotary pairs), so an adapter trained against them loads into
//! llama.cpp unchanged; [`crate::peft`] converts to and from Hugging Face order.

use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Model families the trainer can build (their GGUF `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (SmolLM2, Llama 2/3, Mistral-style dense models): rotary
    /// embedding on interleaved pairs, no projection biases.
    Llama,
    /// `qwen2` (Qwen2, Qwen2.5): rotary embedding on the two halves of each
    /// head (NeoX style), biases on the query, key and value projections.
    Qwen2,
}

impl Arch {
    /// The GGUF `general.architecture` string.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// Shapes and constants of a decoder-only transformer, read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Feed-forward (MLP) inner size.
    pub n_ff: usize,
    /// Attention heads for queries.
    pub n_head: usize,
    /// Attention heads for keys and values (grouped-query attention).
    pub n_head_kv: usize,
    /// Size of one head (`n_embd / n_head` unless the GGUF says otherwise).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Rotary embedding base (θ).
    pub rope_base: f64,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub vocab: usize,
}

/// A base model's weights as f32 tensors by GGUF name, with its shapes.
pub struct BaseWeights {
    pub hp: HParams,
    pub tensors: HashMap<String, Tensor>,
}

/// Read a GGUF model and dequantize every tensor to f32 on `device`.
///
/// Errors: the file is missing or not GGUF; the architecture is not `llama`
/// or `qwen2`; a required metadata key or tensor is absent.
pub fn load_base(path: &Path, device: &Device) -> Result<BaseWeights> {
    let (mut f, content) = open(path)?;
    let hp = hparams(path, &content)?;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content
            .tensor(&mut f, name, device)
            .with_context(|| format!("{}: reading tensor {name}", path.display()))?;
        tensors.insert(name.clone(), q.dequantize(device)?);
    }
    Ok(BaseWeights { hp, tensors })
}

/// A GGUF model's shapes from its metadata alone, no tensor read (cheap
/// for a 70B file). Errors: as [`load_base`].
pub fn read_hparams(path: &Path) -> Result<HParams> {
    let (_, content) = open(path)?;
    hparams(path, &content)
}

fn open(path: &Path) -> Result<(std::fs::File, gguf_file::Content)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("model file {}", path.display()))?;
    let content = gguf_file::Content::read(&mut f)
        .map_err(|e| anyhow::anyhow!("{}: not a readable GGUF file: {e}", path.display()))?;
    Ok((f, content))
}

fn hparams(path: &Path, content: &gguf_file::Content) -> Result<HParams> {
    let md = &content.metadata;
    let arch_name = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let arch = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        other => bail!(
            "{}: architecture {other:?} is not supported by the trainer (llama and qwen2 are)",
            path.display()
        ),
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let get_u = |k: &str| -> Result<usize> {
        let v = md
            .get(&key(k))
            .with_context(|| format!("{}: GGUF metadata lacks {}", path.display(), key(k)))?;
        Ok(v.to_u32()
            .map(|x| x as usize)
            .or_else(|_| v.to_u64().map(|x| x as usize))?)
    };
    let get_f = |k: &str, default: f64| -> f64 {
        md.get(&key(k))
            .and_then(|v| v.to_f32().ok())
            .map(|x| x as f64)
            .unwrap_or(default)
    };
    let n_embd = get_u("embedding_length")?;
    let n_head = get_u("attention.head_count")?;
    let n_head_kv = get_u("attention.head_count_kv").unwrap_or(n_head);
    let head_dim = get_u("attention.key_length").unwrap_or(n_embd / n_head);
    let vocab = content
        .tensor_infos
        .get("token_embd.weight")
        .with_context(|| format!("{}: no token_embd.weight", path.display()))?
        .shape
        .dims()[0];
    Ok(HParams {
        arch,
        n_layer: get_u("block_count")?,
        n_embd,
        n_ff: get_u("feed_forward_length")?,
        n_head,
        n_head_kv,
        head_dim,
        rms_eps: get_f("attention.layer_norm_rms_epsilon", 1e-5),
        rope_base: get_f("rope.freq_base", 10_000.0),
        vocab,
    })
}

/// One LoRA pair for a base tensor, in the shapes llama.cpp expects:
/// `a` is `(rank, in)`, `b` is `(out, rank)` (row-major), so that the update
/// is `W + (alpha / rank) · B·A` for a base `W` of shape `(out, in)`.
pub struct AdapterTensor {
    /// The base tensor's GGUF name, e.g. `blk.0.attn_q.weight`.
    pub base: String,
    pub a: Tensor,
    pub b: Tensor,
}

/// Write a LoRA adapter GGUF that llama.cpp loads with `--lora` or
/// `llama_adapter_lora_init`: `general.type = adapter`, `adapter.type = lora`,
/// `adapter.lora.alpha`, tensors `<base>.lora_a` / `<base>.lora_b` in f32
/// (llama.cpp's `llama-adapter.cpp` checks these names and shapes).
///
/// The file is written under a temporary name and renamed, so a reader never
/// sees half an adapter. Errors: I/O.
pub fn write_adapter(path: &Path, arch: Arch, alpha: f32, tensors: &[AdapterTensor]) -> Result<()> {
    let mut q = Vec::with_capacity(tensors.len() * 2);
    for t in tensors {
        q.push((
            format!("{}.lora_a", t.base),
            QTensor::quantize(&t.a.contiguous()?, GgmlDType::F32)?,
        ));
        q.push((
            format!("{}.lora_b", t.base),
            QTensor::quantize(&t.b.contiguous()?, GgmlDType::F32)?,
        ));
    }
    let general_type = gguf_file::Value::String("adapter".into());
    let arch_v = gguf_file::Value::String(arch.gguf_name().into());
    let adapter_type = gguf_file::Value::String("lora".into());
    let alpha_v = gguf_file::Value::F32(alpha);
    let md: Vec<(&str, &gguf_file::Value)> = vec![
        ("general.type", &general_type),
        ("general.architecture", &arch_v),
        ("adapter.type", &adapter_type),
        ("adapter.lora.alpha", &alpha_v),
    ];
    let refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = path.with_extension("gguf.part");
    {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        gguf_file::write(&mut w, &md, &refs)?;
        std::io::Write::flush(&mut w)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A LoRA adapter read back from GGUF: its architecture, alpha and pairs.
pub struct Adapter {
    pub arch: String,
    pub alpha: f32,
    pub tensors: Vec<AdapterTensor>,
}

/// Read a LoRA adapter GGUF (as written by [`write_adapter`] or llama.cpp's
/// `convert_lora_to_gguf.py`). Errors: not an adapter GGUF; a `lora_a`
/// without its `lora_b`.
pub fn read_adapter(path: &Path, device: &Device) -> Result<Adapter> {
    let mut f = std::fs::File::open(path).with_context(|| format!("adapter {}", path.display()))?;
    let content = gguf_file::Content::read(&mut f)
        .map_err(|e| anyhow::anyhow!("{}: not a readable GGUF file: {e}", path.display()))?;
    let s = |k: &str| {
        content
            .metadata
            .get(k)
            .and_then(|v| v.to_string().ok())
            .cloned()
    };
    if s("general.type").as_deref() != Some("adapter")
        || s("adapter.type").as_deref() != Some("lora")
    {
        bail!(
            "{}: not a LoRA adapter GGUF (general.type / adapter.type)",
            path.display()
        );
    }
    let alpha = content
        .metadata
        .get("adapter.lora.alpha")
        .and_then(|v| v.to_f32().ok())
        .unwrap_or(0.0);
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::new();
    for n in names {
        let Some(base) = n.strip_suffix(".lora_a") else {
            continue;
        };
        let b_name = format!("{base}.lora_b");
        if !content.tensor_infos.contains_key(&b_name) {
            bail!("{}: {n} has no {b_name}", path.display());
        }
        let a = content.tensor(&mut f, n, device)?.dequantize(device)?;
        let b = content
            .tensor(&mut f, &b_name, device)?
            .dequantize(device)?;
        tensors.push(AdapterTensor {
            base: base.to_string(),
            a,
            b,
        });
    }
    Ok(Adapter {
        arch: s("general.architecture").unwrap_or_default(),
        alpha,
        tensors,
    })
}
