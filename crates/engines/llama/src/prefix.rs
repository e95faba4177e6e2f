//! KV-cache prefix reuse between requests of one slot, and copying a longer prefix from another slot (`model.prefix_reuse`).

use crate::*;
use anyhow::Result;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

/// Shortest extra prefix, in tokens, that makes copying another sequence's KV
/// cache worth it. A copy between sequences with their own KV streams moves
/// the whole stream buffer (llama.cpp copies only full streams): about 37 MB
/// for a 0.5B model at 3,072 tokens, ~0.5 GB for a 7B one at 4,096, against
/// a prefill of 32 tokens (a fraction of a second on a CPU for a 0.5B model,
/// seconds for a 7B one).
pub(crate) const COPY_MIN_GAIN: usize = 32;

/// Give sequence `seq` (its slot free) the longest prefix of `prompt` whose
/// KV cache any sequence holds: its own cells from its last request, or a
/// copy of another sequence's (a busy slot's tokens so far, or an idle
/// slot's last request) when that covers at least [`COPY_MIN_GAIN`] more
/// tokens. So a rubric, system text or few-shot block prefilled in one slot
/// serves every slot. Returns how many prompt tokens are reused.
/// Errors: llama.cpp refused to clear or copy a sequence.
pub(crate) fn claim_prefix(
    ctx: &mut LlamaContext<'_>,
    seq: usize,
    slots: &[Option<Slot>],
    kept: &mut [Vec<LlamaToken>],
    prompt: &[LlamaToken],
) -> Result<usize> {
    let own = reusable_prefix(&kept[seq], prompt);
    let best_other = (0..slots.len())
        .filter(|&j| j != seq)
        .map(|j| {
            let held = match &slots[j] {
                Some(busy) => &busy.fed[..],
                None => &kept[j][..],
            };
            (j, reusable_prefix(held, prompt))
        })
        .max_by_key(|&(_, n)| n);
    let held = std::mem::take(&mut kept[seq]);
    match best_other {
        Some((src, n)) if n >= own + COPY_MIN_GAIN => copy_prefix(ctx, src, seq, n),
        _ => keep_shared_prefix(ctx, seq, &held, prompt),
    }
}

/// Make sequence `dst` hold exactly the first `n` cells of sequence `src`
/// (`llama_memory_seq_cp` of the whole sequence, then the tail dropped; the
/// buffer copy itself runs at the start of the next decode). Returns `n`, or
/// 0 when the cache cannot drop part of a sequence (recurrent models).
pub(crate) fn copy_prefix(
    ctx: &mut LlamaContext<'_>,
    src: usize,
    dst: usize,
    n: usize,
) -> Result<usize> {
    ctx.clear_kv_cache_seq(Some(dst as u32), None, None)?;
    ctx.copy_kv_cache_seq(src as i32, dst as i32, None, None)?;
    keep_first(ctx, dst, n)
}

/// Keep the KV cells of sequence `seq` that `prompt` shares with the tokens
/// `held` there and drop the rest; returns how many prompt tokens are reused
/// (0 when nothing is held, i.e. with prefix reuse off).
/// Errors: llama.cpp refused to clear the sequence.
pub(crate) fn keep_shared_prefix(
    ctx: &mut LlamaContext<'_>,
    seq: usize,
    held: &[LlamaToken],
    prompt: &[LlamaToken],
) -> Result<usize> {
    if held.is_empty() {
        return Ok(0);
    }
    keep_first(ctx, seq, reusable_prefix(held, prompt))
}

/// Drop every cell of sequence `seq` from position `n` on; returns `n`. A
/// cache that cannot drop part of a sequence (recurrent models) is cleared
/// instead and 0 returned. Errors: llama.cpp refused to clear the sequence.
pub(crate) fn keep_first(ctx: &mut LlamaContext<'_>, seq: usize, n: usize) -> Result<usize> {
    if ctx
        .clear_kv_cache_seq(Some(seq as u32), Some(n as u32), None)
        .unwrap_or(false)
    {
        return Ok(n);
    }
    ctx.clear_kv_cache_seq(Some(seq as u32), None, None)?;
    Ok(0)
}

/// How many leading tokens of `prompt` can come from a KV cache holding
/// `held`: the common prefix, less one, since the last prompt token must be
/// decoded again for its logits.
pub(crate) fn reusable_prefix(held: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    let common = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    common.min(prompt.len().saturating_sub(1))
}
